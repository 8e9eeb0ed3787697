#include "common/heap_trim.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace kole {
namespace {

TEST(HeapTrimmer, ResidentBytesIsTheProcessResidentSet) {
  int64_t before = ResidentBytes();
  EXPECT_GT(before, 0);

  // Touching 64 MB makes the resident set grow by about that much.
  std::vector<char> block(64 << 20);
  std::memset(block.data(), 1, block.size());
  EXPECT_GT(ResidentBytes(), before + (48 << 20));
}

TEST(HeapTrimmer, GivesBackWhatAnotherThreadsArenaKeepsAfterABurst) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's allocator replaces glibc's arenas";
#endif
  // A burst as the MQTT receive thread makes one: many small allocations on
  // one thread, freed on another, with the last one still alive so that
  // the arena cannot shrink from its top by itself.
  std::vector<std::string*> burst;
  std::thread receiver([&] {
    for (int i = 0; i < 80000; ++i) burst.push_back(new std::string(1000, 'x'));
  });
  receiver.join();
  std::string* survivor = burst.back();
  burst.pop_back();
  for (std::string* s : burst) delete s;

  metrics::MetricsRegistry registry;
  HeapTrimmer trimmer(&registry);
  int64_t released = trimmer.Trim();
  EXPECT_GT(released, 32 << 20);

  std::string rendered = registry.Render();
  EXPECT_NE(rendered.find("kole_process_heap_trims_total 1"), std::string::npos) << rendered;
  EXPECT_NE(rendered.find("kole_process_heap_released_bytes_total " + std::to_string(released)),
            std::string::npos)
      << rendered;
  delete survivor;
}

}  // namespace
}  // namespace kole
