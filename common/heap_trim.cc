#include "common/heap_trim.h"

#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "common/log.h"

namespace kole {
namespace {

// Below this, a trim is routine and not worth a log line.
constexpr int64_t kLogReleasedBytes = int64_t{16} << 20;

}  // namespace

int64_t ResidentBytes() {
  FILE* statm = std::fopen("/proc/self/statm", "r");
  if (statm == nullptr) return 0;
  long long size = 0, resident = 0;
  int read = std::fscanf(statm, "%lld %lld", &size, &resident);
  std::fclose(statm);
  if (read != 2) return 0;
  return static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE);
}

HeapTrimmer::HeapTrimmer(metrics::MetricsRegistry* registry)
    : trims_(registry->AddCounter("kole_process_heap_trims_total",
                                  "Times free allocator memory was given back to the system")),
      released_bytes_(registry->AddCounter(
          "kole_process_heap_released_bytes_total",
          "Resident bytes the process gave back to the system by trimming its heap")) {}

int64_t HeapTrimmer::Trim() {
  auto start = std::chrono::steady_clock::now();
  int64_t before = ResidentBytes();
  malloc_trim(0);
  int64_t after = ResidentBytes();
  int64_t released = before > after ? before - after : 0;
  double took_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  trims_->Add();
  released_bytes_->Add(static_cast<uint64_t>(released));
  if (released >= kLogReleasedBytes) {
    KOLE_VLOG(2, "Gave free heap memory back to the system", "releasedBytes", released,
              "residentBytes", after, "durationMs", took_ms);
  } else {
    KOLE_VLOG(5, "Heap trimmed", "releasedBytes", released, "durationMs", took_ms);
  }
  return released;
}

}  // namespace kole
