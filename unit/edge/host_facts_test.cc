#include "edge/host_facts.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace kole::edge {
namespace {

std::string Fixture(const char* name) { return std::string(KOLE_EDGE_TESTDATA) + "/" + name; }

TEST(HostFacts, ReadsEveryFactFromTheFixtureTree) {
  FactSource source{.root = Fixture("rpi"),
                    .machine = "aarch64",
                    .addresses = std::vector<InterfaceAddress>{{"eth0", "192.0.2.7", false}}};
  absl::StatusOr<HostFacts> facts = ReadHostFacts(source);
  ASSERT_TRUE(facts.ok()) << facts.status();
  EXPECT_EQ(facts->hostname, "Pi-Lab-07");
  EXPECT_EQ(facts->machine_id, "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(facts->system_uuid, "4c4c4544-0042-3510-8052-b4c04f4e3232");
  EXPECT_EQ(facts->boot_id, "6d1f2e0c-4a57-4b7e-9d2b-0f6a3c1e8b55");
  EXPECT_EQ(facts->kernel_version, "6.6.31+rpt-rpi-v8");
  EXPECT_EQ(facts->os_image, "Debian GNU/Linux 12 (bookworm)");
  EXPECT_EQ(facts->architecture, "arm64");
  EXPECT_EQ(facts->cpus, 4u);
  EXPECT_EQ(facts->memory_bytes, 8245324ull * 1024);
  EXPECT_GT(facts->storage_bytes, 0u) << "statvfs of the root";
  ASSERT_EQ(facts->addresses.size(), 1u);
  EXPECT_EQ(facts->addresses[0].address, "192.0.2.7");
}

TEST(HostFacts, FallsBackWithoutDmiAndEtcOsRelease) {
  FactSource source{.root = Fixture("minimal"), .machine = "armv7l", .addresses = {{}}};
  absl::StatusOr<HostFacts> facts = ReadHostFacts(source);
  ASSERT_TRUE(facts.ok()) << facts.status();
  EXPECT_EQ(facts->system_uuid, "fedcba98-7654-3210-fedc-ba9876543210")
      << "derived from the machine id when product_uuid is unreadable";
  EXPECT_EQ(facts->os_image, "Poky (Yocto Project Reference Distro) 4.0")
      << "from /usr/lib/os-release, single quotes removed";
  EXPECT_EQ(facts->architecture, "arm");
  EXPECT_EQ(facts->cpus, 1u);
}

TEST(HostFacts, MissingRequiredFactNamesTheFile) {
  FactSource source{.root = "/nonexistent-kole-root", .machine = "x86_64", .addresses = {{}}};
  absl::StatusOr<HostFacts> facts = ReadHostFacts(source);
  ASSERT_FALSE(facts.ok());
  EXPECT_EQ(facts.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(facts.status().message().find("/nonexistent-kole-root/proc/sys/kernel/hostname"),
            std::string::npos);
}

TEST(HostFacts, MalformedMachineIdIsRefused) {
  std::string root = ::testing::TempDir() + "/facts-bad-machine-id";
  std::filesystem::remove_all(root);
  std::filesystem::copy(Fixture("rpi"), root, std::filesystem::copy_options::recursive);
  std::ofstream(root + "/etc/machine-id") << "not-a-machine-id\n";
  absl::StatusOr<HostFacts> facts =
      ReadHostFacts(FactSource{.root = root, .machine = "x86_64", .addresses = {{}}});
  ASSERT_FALSE(facts.ok());
  EXPECT_EQ(facts.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(HostFacts, GoArchitectureNames) {
  EXPECT_EQ(GoArchitecture("x86_64"), "amd64");
  EXPECT_EQ(GoArchitecture("aarch64"), "arm64");
  EXPECT_EQ(GoArchitecture("armv6l"), "arm");
  EXPECT_EQ(GoArchitecture("i686"), "386");
  EXPECT_EQ(GoArchitecture("riscv64"), "riscv64");
}

TEST(HostFacts, CpuListCounting) {
  EXPECT_EQ(CountCpuList("0-3"), 4u);
  EXPECT_EQ(CountCpuList("0-3,6,8-9\n"), 7u);
  EXPECT_EQ(CountCpuList("0"), 1u);
  EXPECT_EQ(CountCpuList("3-1"), 0u);
  EXPECT_EQ(CountCpuList("a-b"), 0u);
  EXPECT_EQ(CountCpuList(""), 0u);
}

TEST(HostFacts, QuantitiesAndNames) {
  EXPECT_EQ(MemoryQuantity(8245324ull * 1024), "8245324Ki");
  EXPECT_EQ(PrettyName("NAME=x\nPRETTY_NAME=\"Ubuntu 24.04 \\\"Noble\\\"\"\n"),
            "Ubuntu 24.04 \"Noble\"");
  EXPECT_EQ(PrettyName("NAME=x\n"), "");
  EXPECT_EQ(UuidFromMachineId("0123456789ABCDEF0123456789abcdef"),
            "01234567-89ab-cdef-0123-456789abcdef");
}

}  // namespace
}  // namespace kole::edge
