#include "edge/fleet_generator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace kole::edge {
namespace {

constexpr uint64_t kFleetSize = 200'000;

FleetGenerator MustCreate(const FleetOptions& options = {}) {
  absl::StatusOr<FleetGenerator> fleet = FleetGenerator::Create(options);
  EXPECT_TRUE(fleet.ok()) << fleet.status();
  return *std::move(fleet);
}

// Calls fn(index, node) for nodes [0, count), reusing one NodeSpec.
template <typename Fn>
void ForEachNode(const FleetGenerator& fleet, uint64_t count, Fn fn) {
  NodeSpec node;
  for (uint64_t i = 0; i < count; ++i) {
    fleet.FillNode(i, /*boot=*/0, &node);
    fn(i, node);
  }
}

std::string_view Label(const NodeSpec& node, std::string_view key) {
  for (const auto& [k, v] : node.labels) {
    if (k == key) return v;
  }
  ADD_FAILURE() << node.name << " has no label " << key;
  return {};
}

std::string_view Quantity(const StringPairs& list, std::string_view resource) {
  for (const auto& [k, v] : list) {
    if (k == resource) return v;
  }
  return {};
}

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsLowerHex(char c) { return (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9'); }

// RFC 1123 subdomain as Kubernetes validates object names
// (k8s.io/apimachinery IsDNS1123Subdomain): at most 253 characters, labels
// separated by dots, each label 1-63 of [a-z0-9-] starting and ending with an
// alphanumeric.
bool IsDns1123Subdomain(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    std::string_view label =
        name.substr(start, dot == std::string_view::npos ? name.npos : dot - start);
    if (label.empty() || label.size() > 63) return false;
    if (!IsLowerAlnum(label.front()) || !IsLowerAlnum(label.back())) return false;
    for (char c : label) {
      if (!IsLowerAlnum(c) && c != '-') return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// A label value as Kubernetes validates it: empty, or at most 63 of
// [A-Za-z0-9-_.] starting and ending with an alphanumeric.
bool IsLabelValue(std::string_view value) {
  if (value.empty()) return true;
  if (value.size() > 63) return false;
  auto alnum = [](char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); };
  if (!alnum(value.front()) || !alnum(value.back())) return false;
  return std::all_of(value.begin(), value.end(),
                     [&](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
}

bool IsCanonicalUuid(std::string_view id) {
  if (id.size() != 36) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? id[i] != '-' : !IsLowerHex(id[i])) return false;
  }
  return true;
}

// Milli-units of a cpu quantity ("4" or "3920m").
int64_t MilliCpu(std::string_view q) {
  if (!q.empty() && q.back() == 'm') return std::stoll(std::string(q.substr(0, q.size() - 1)));
  return std::stoll(std::string(q)) * 1000;
}

// Mebibytes of a memory quantity written in Mi.
int64_t MemoryMib(std::string_view q) {
  EXPECT_TRUE(q.size() > 2 && q.substr(q.size() - 2) == "Mi") << q;
  return std::stoll(std::string(q.substr(0, q.size() - 2)));
}

template <typename T>
bool AllDistinct(std::vector<T> values) {
  std::sort(values.begin(), values.end());
  return std::adjacent_find(values.begin(), values.end()) == values.end();
}

TEST(FleetGenerator, SameSeedGivesSameNodes) {
  FleetGenerator a = MustCreate(FleetOptions{.seed = 42});
  FleetGenerator b = MustCreate(FleetOptions{.seed = 42});
  for (uint64_t i = 0; i < 10'000; ++i) {
    ASSERT_EQ(a.Node(i), b.Node(i)) << "index " << i;
  }
}

TEST(FleetGenerator, DifferentSeedsGiveDifferentNodes) {
  FleetGenerator a = MustCreate(FleetOptions{.seed = 1});
  FleetGenerator b = MustCreate(FleetOptions{.seed = 2});
  int same_names = 0;
  for (uint64_t i = 0; i < 10'000; ++i) {
    NodeSpec x = a.Node(i);
    NodeSpec y = b.Node(i);
    EXPECT_NE(x.machine_id, y.machine_id) << "index " << i;
    EXPECT_NE(x.system_uuid, y.system_uuid) << "index " << i;
    EXPECT_NE(x.boot_id, y.boot_id) << "index " << i;
    if (x.name == y.name) ++same_names;
  }
  EXPECT_EQ(same_names, 0);
}

TEST(FleetGenerator, RandomAccessMatchesSequential) {
  FleetGenerator fleet = MustCreate();
  std::vector<NodeSpec> sequential;
  ForEachNode(fleet, 5'000, [&](uint64_t, const NodeSpec& node) { sequential.push_back(node); });

  // A second generator visiting the same indices in shuffled order, as a
  // simulator owning a slice would, sees the same nodes.
  FleetGenerator other = MustCreate();
  std::vector<uint64_t> order(sequential.size());
  for (uint64_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937_64(7));
  for (uint64_t i : order) {
    ASSERT_EQ(other.Node(i), sequential[i]) << "index " << i;
  }

  // The far end of the index space is as reachable as the start.
  NodeSpec last = fleet.Node(FleetGenerator::kMaxNodes - 1);
  EXPECT_EQ(last, other.Node(FleetGenerator::kMaxNodes - 1));
  EXPECT_EQ(last.addresses[0].address, "10.255.255.254");
}

TEST(FleetGenerator, FillNodeOverwritesEveryFieldOfAReusedNode) {
  FleetGenerator fleet = MustCreate();
  NodeSpec node;
  node.labels.resize(20, {"stale", "stale"});
  node.annotations.resize(5, {"stale", "stale"});
  node.capacity.resize(30, {"stale", "stale"});
  node.addresses.resize(7, {"stale", "stale"});
  fleet.FillNode(7, 3, &node);
  EXPECT_EQ(node, fleet.Node(7, 3));
  fleet.FillNode(5, 0, &node);
  EXPECT_EQ(node, fleet.Node(5));
}

TEST(FleetGenerator, WriteNameMatchesTheNodesName) {
  FleetGenerator fleet = MustCreate(FleetOptions{.seed = 11});
  std::string name = "stale and longer than any generated name, to see it overwritten";
  for (uint64_t i : {uint64_t{0}, uint64_t{1}, uint64_t{999}, uint64_t{123456}}) {
    fleet.WriteName(i, &name);
    EXPECT_EQ(name, fleet.Node(i).name) << "index " << i;
  }
}

TEST(FleetGenerator, IdentifiersAreUniqueOver200kNodes) {
  FleetGenerator fleet = MustCreate();
  std::vector<std::string> names, machine_ids, system_uuids, boot_ids, ips;
  ForEachNode(fleet, kFleetSize, [&](uint64_t, const NodeSpec& node) {
    names.push_back(node.name);
    machine_ids.push_back(node.machine_id);
    system_uuids.push_back(node.system_uuid);
    boot_ids.push_back(node.boot_id);
    ips.push_back(node.addresses[0].address);
  });
  EXPECT_TRUE(AllDistinct(names));
  EXPECT_TRUE(AllDistinct(machine_ids));
  EXPECT_TRUE(AllDistinct(system_uuids));
  EXPECT_TRUE(AllDistinct(boot_ids));
  EXPECT_TRUE(AllDistinct(ips));
}

TEST(FleetGenerator, NamesAreDns1123SubdomainsAndValidHostnameLabels) {
  // The checker itself, on names Kubernetes accepts and rejects.
  EXPECT_TRUE(IsDns1123Subdomain("fra-0042-rpi4-4g-3f9a1c2e"));
  EXPECT_TRUE(IsDns1123Subdomain("a.b-c.d9"));
  EXPECT_FALSE(IsDns1123Subdomain(""));
  EXPECT_FALSE(IsDns1123Subdomain("-a"));
  EXPECT_FALSE(IsDns1123Subdomain("a-"));
  EXPECT_FALSE(IsDns1123Subdomain("a..b"));
  EXPECT_FALSE(IsDns1123Subdomain("Node-1"));
  EXPECT_FALSE(IsDns1123Subdomain("node_1"));
  EXPECT_FALSE(IsDns1123Subdomain(std::string(64, 'a')));
  EXPECT_FALSE(IsDns1123Subdomain(std::string(254, 'a')));

  FleetGenerator fleet = MustCreate();
  ForEachNode(fleet, 50'000, [&](uint64_t, const NodeSpec& node) {
    ASSERT_TRUE(IsDns1123Subdomain(node.name)) << node.name;
    // The name doubles as the hostname label value, which allows only 63.
    ASSERT_LE(node.name.size(), 63u) << node.name;
    for (const auto& [key, value] : node.labels) {
      ASSERT_TRUE(IsLabelValue(value)) << key << "=" << value;
    }
  });
}

TEST(FleetGenerator, IdentifiersHaveCanonicalFormats) {
  FleetGenerator fleet = MustCreate();
  ForEachNode(fleet, 20'000, [&](uint64_t i, const NodeSpec& node) {
    ASSERT_EQ(node.machine_id.size(), 32u);
    ASSERT_TRUE(std::all_of(node.machine_id.begin(), node.machine_id.end(), IsLowerHex))
        << node.machine_id;
    ASSERT_TRUE(IsCanonicalUuid(node.system_uuid)) << node.system_uuid;
    ASSERT_TRUE(IsCanonicalUuid(node.boot_id)) << node.boot_id;
    // Random (version 4, RFC 4122 variant) UUIDs.
    ASSERT_EQ(node.system_uuid[14], '4') << node.system_uuid;
    ASSERT_NE(std::string_view("89ab").find(node.boot_id[19]), std::string_view::npos)
        << node.boot_id;

    uint64_t host = i + 1;
    std::string want_ip = "10." + std::to_string((host >> 16) & 255) + "." +
                          std::to_string((host >> 8) & 255) + "." + std::to_string(host & 255);
    ASSERT_EQ(node.addresses.size(), 2u);
    ASSERT_EQ(node.addresses[0].type, "InternalIP");
    ASSERT_EQ(node.addresses[0].address, want_ip);
    ASSERT_EQ(node.addresses[1].type, "Hostname");
    ASSERT_EQ(node.addresses[1].address, node.name);
  });
}

TEST(FleetGenerator, LabelsAreSortedAndAgreeWithNodeInfo) {
  FleetGenerator fleet = MustCreate();
  ForEachNode(fleet, 20'000, [&](uint64_t, const NodeSpec& node) {
    ASSERT_TRUE(std::is_sorted(node.labels.begin(), node.labels.end()));
    ASSERT_TRUE(std::adjacent_find(node.labels.begin(), node.labels.end(),
                                   [](const auto& a, const auto& b) {
                                     return a.first == b.first;
                                   }) == node.labels.end());
    ASSERT_TRUE(std::is_sorted(node.annotations.begin(), node.annotations.end()));
    ASSERT_TRUE(std::is_sorted(node.capacity.begin(), node.capacity.end()));
    ASSERT_TRUE(std::is_sorted(node.allocatable.begin(), node.allocatable.end()));

    ASSERT_EQ(Label(node, "kubernetes.io/hostname"), node.name);
    ASSERT_EQ(Label(node, "kubernetes.io/arch"), node.architecture);
    ASSERT_EQ(Label(node, "kubernetes.io/os"), node.operating_system);
    ASSERT_EQ(node.operating_system, "linux");
    // A zone is its region plus a letter; the name starts with the site.
    std::string_view region = Label(node, "topology.kubernetes.io/region");
    std::string_view zone = Label(node, "topology.kubernetes.io/zone");
    ASSERT_EQ(zone.substr(0, region.size()), region);
    ASSERT_EQ(zone.size(), region.size() + 1);
    std::string_view site = Label(node, "edge.kole.io/site");
    ASSERT_EQ(std::string_view(node.name).substr(0, site.size() + 1), std::string(site) + "-");
    ASSERT_FALSE(node.kernel_version.empty());
    ASSERT_FALSE(node.os_image.empty());
    ASSERT_FALSE(node.container_runtime_version.empty());
    ASSERT_FALSE(node.agent_version.empty());
  });
}

TEST(FleetGenerator, CardinalitiesStayWithinDefaultOptions) {
  FleetOptions options;
  FleetGenerator fleet = MustCreate(options);
  std::map<std::string, std::set<std::string>> seen;
  ForEachNode(fleet, kFleetSize, [&](uint64_t, const NodeSpec& node) {
    for (const auto& [key, value] : node.labels) {
      if (key != "kubernetes.io/hostname") seen[key].insert(value);
    }
    seen["os_image"].insert(node.os_image);
    seen["kernel_version"].insert(node.kernel_version);
    seen["agent_version"].insert(node.agent_version);
    seen["container_runtime_version"].insert(node.container_runtime_version);
    seen["annotations"].insert(node.annotations.empty() ? "" : node.annotations[0].first);
  });

  // Over 200k nodes every value of the default fleet shows up.
  EXPECT_EQ(seen["edge.kole.io/site"].size(), options.site_count);
  EXPECT_EQ(seen["topology.kubernetes.io/region"].size(), options.region_count);
  EXPECT_EQ(seen["topology.kubernetes.io/zone"].size(), options.zone_count);
  EXPECT_EQ(seen["node.kubernetes.io/instance-type"].size(), options.hardware_type_count);
  EXPECT_EQ(seen["os_image"].size(), options.os_image_count);
  EXPECT_EQ(seen["kernel_version"].size(), options.kernel_version_count);
  EXPECT_EQ(seen["agent_version"].size(), options.agent_version_count);
  EXPECT_EQ(seen["container_runtime_version"].size(), options.container_runtime_version_count);
  EXPECT_EQ(seen["customer"].size(), options.customer_count);
  EXPECT_EQ(seen["tier"], (std::set<std::string>{"canary", "prod", "staging"}));
  EXPECT_EQ(seen["kubernetes.io/arch"], (std::set<std::string>{"amd64", "arm", "arm64"}));
  EXPECT_EQ(seen["kubernetes.io/os"], std::set<std::string>{"linux"});
  EXPECT_EQ(seen["annotations"].size(), 1u);
}

TEST(FleetGenerator, CardinalitiesFollowCustomOptions) {
  FleetOptions options{.seed = 9,
                       .site_count = 5'000,
                       .region_count = 3,
                       .zone_count = 7,
                       .hardware_type_count = 5,
                       .os_image_count = 4,
                       .kernel_version_count = 3,
                       .agent_version_count = 2,
                       .container_runtime_version_count = 1,
                       .customer_count = 30};
  FleetGenerator fleet = MustCreate(options);
  std::set<std::string> sites, regions, zones, hardware, images, kernels, agents, runtimes,
      customers;
  ForEachNode(fleet, kFleetSize, [&](uint64_t, const NodeSpec& node) {
    sites.emplace(Label(node, "edge.kole.io/site"));
    regions.emplace(Label(node, "topology.kubernetes.io/region"));
    zones.emplace(Label(node, "topology.kubernetes.io/zone"));
    hardware.emplace(Label(node, "node.kubernetes.io/instance-type"));
    customers.emplace(Label(node, "customer"));
    images.insert(node.os_image);
    kernels.insert(node.kernel_version);
    agents.insert(node.agent_version);
    runtimes.insert(node.container_runtime_version);
  });
  // Thousands of sites are reached, not just configured.
  EXPECT_EQ(sites.size(), 5'000u);
  EXPECT_EQ(regions.size(), 3u);
  EXPECT_EQ(zones.size(), 7u);
  EXPECT_EQ(hardware.size(), 5u);
  EXPECT_EQ(images.size(), 4u);
  EXPECT_EQ(kernels.size(), 3u);
  EXPECT_EQ(agents.size(), 2u);
  EXPECT_EQ(runtimes.size(), 1u);
  EXPECT_EQ(customers.size(), 30u);
}

TEST(FleetGenerator, SitesAreUniformAndVersionsAreSkewed) {
  FleetGenerator fleet = MustCreate();
  std::map<std::string, int> per_site, per_hardware, per_agent;
  ForEachNode(fleet, kFleetSize, [&](uint64_t, const NodeSpec& node) {
    ++per_site[std::string(Label(node, "edge.kole.io/site"))];
    ++per_hardware[std::string(Label(node, "node.kubernetes.io/instance-type"))];
    ++per_agent[node.agent_version];
  });

  // 100 nodes a site on average; a uniform draw keeps every site within
  // six standard deviations (10 nodes) of that.
  for (const auto& [site, count] : per_site) {
    EXPECT_GT(count, 40) << site;
    EXPECT_LT(count, 160) << site;
  }

  // Zipf with s = 1 over 24 types: the top type takes about 1/H(24) = 26%,
  // the last about 1.1%.
  auto [min_hw, max_hw] =
      std::minmax_element(per_hardware.begin(), per_hardware.end(),
                          [](const auto& a, const auto& b) { return a.second < b.second; });
  EXPECT_EQ(max_hw->first, "rpi4-4g");
  EXPECT_NEAR(max_hw->second / double(kFleetSize), 0.265, 0.01);
  EXPECT_GT(max_hw->second, 15 * min_hw->second);
  EXPECT_GT(per_agent["v1.12.2-kole"], per_agent["v1.10.1-kole"] * 5);
}

TEST(FleetGenerator, HardwareTypeDecidesArchAndCapacity) {
  FleetGenerator fleet = MustCreate();
  std::map<std::string, NodeSpec> first_of_type;
  ForEachNode(fleet, 50'000, [&](uint64_t, const NodeSpec& node) {
    std::string type(Label(node, "node.kubernetes.io/instance-type"));
    auto [it, inserted] = first_of_type.emplace(type, node);
    ASSERT_EQ(node.architecture, it->second.architecture) << type;
    ASSERT_EQ(node.capacity, it->second.capacity) << type;
    ASSERT_EQ(node.allocatable, it->second.allocatable) << type;
  });

  for (const auto& [type, node] : first_of_type) {
    for (const char* resource : {"cpu", "ephemeral-storage", "memory", "pods"}) {
      EXPECT_FALSE(Quantity(node.capacity, resource).empty()) << type << " " << resource;
      EXPECT_FALSE(Quantity(node.allocatable, resource).empty()) << type << " " << resource;
    }
    // Allocatable is capacity minus what the system reserves.
    EXPECT_LT(MilliCpu(Quantity(node.allocatable, "cpu")),
              MilliCpu(Quantity(node.capacity, "cpu")));
    EXPECT_LT(MemoryMib(Quantity(node.allocatable, "memory")),
              MemoryMib(Quantity(node.capacity, "memory")));
    EXPECT_GT(MemoryMib(Quantity(node.allocatable, "memory")), 0) << type;
  }
  EXPECT_EQ(Quantity(first_of_type.at("rpi4-4g").capacity, "memory"), "3906Mi");
  EXPECT_EQ(Quantity(first_of_type.at("rpi4-4g").capacity, "cpu"), "4");
  EXPECT_EQ(first_of_type.at("rpi4-4g").architecture, "arm64");
  EXPECT_EQ(first_of_type.at("nuc11-16g").architecture, "amd64");
}

TEST(FleetGenerator, BootCounterChangesOnlyBootId) {
  FleetGenerator fleet = MustCreate();
  for (uint64_t i : {uint64_t{0}, uint64_t{1}, uint64_t{123'456}, FleetGenerator::kMaxNodes - 1}) {
    NodeSpec first = fleet.Node(i, 0);
    std::vector<std::string> boot_ids;
    for (uint32_t boot = 0; boot < 1'000; ++boot) {
      NodeSpec restarted = fleet.Node(i, boot);
      ASSERT_EQ(restarted.boot_id, fleet.BootId(i, boot));
      boot_ids.push_back(restarted.boot_id);
      restarted.boot_id = first.boot_id;
      ASSERT_EQ(restarted, first) << "index " << i << " boot " << boot;
    }
    EXPECT_TRUE(AllDistinct(boot_ids)) << "index " << i;
  }
  EXPECT_EQ(fleet.BootId(5, std::numeric_limits<uint32_t>::max()),
            fleet.Node(5, std::numeric_limits<uint32_t>::max()).boot_id);
}

TEST(FleetOptions, DefaultsAreValid) { EXPECT_TRUE(FleetOptions{}.Validate().ok()); }

TEST(FleetOptions, OutOfBoundsValuesAreRejected) {
  auto invalid = [](auto mutate) {
    FleetOptions options;
    mutate(options);
    absl::Status status = options.Validate();
    EXPECT_EQ(FleetGenerator::Create(options).status(), status);
    return absl::IsInvalidArgument(status);
  };
  EXPECT_TRUE(invalid([](FleetOptions& o) { o.site_count = 0; }));
  EXPECT_TRUE(invalid([](FleetOptions& o) { o.site_count = FleetOptions::kMaxSites + 1; }));
  EXPECT_TRUE(invalid([](FleetOptions& o) { o.region_count = 0; }));
  EXPECT_TRUE(invalid([](FleetOptions& o) { o.zone_count = o.region_count - 1; }));
  EXPECT_TRUE(invalid([](FleetOptions& o) { o.zone_count = 26 * o.region_count + 1; }));
  EXPECT_TRUE(invalid([](FleetOptions& o) { o.hardware_type_count = 33; }));
  EXPECT_TRUE(invalid([](FleetOptions& o) { o.os_image_count = 21; }));
  EXPECT_TRUE(invalid([](FleetOptions& o) { o.kernel_version_count = 4 * o.os_image_count + 1; }));
  EXPECT_TRUE(invalid([](FleetOptions& o) { o.agent_version_count = 0; }));
  EXPECT_TRUE(invalid([](FleetOptions& o) { o.container_runtime_version_count = 13; }));
  EXPECT_TRUE(invalid([](FleetOptions& o) { o.customer_count = 0; }));
  EXPECT_TRUE(invalid([](FleetOptions& o) { o.popularity_skew = -0.5; }));
  EXPECT_TRUE(invalid([](FleetOptions& o) { o.popularity_skew = std::nan(""); }));
  EXPECT_FALSE(invalid([](FleetOptions& o) { o.popularity_skew = 0; }));
  EXPECT_FALSE(invalid([](FleetOptions& o) {
    o.hardware_type_count = FleetOptions::kMaxHardwareTypes;
    o.os_image_count = FleetOptions::kMaxOsImages;
    o.kernel_version_count = 4 * FleetOptions::kMaxOsImages;
    o.agent_version_count = FleetOptions::kMaxAgentVersions;
    o.container_runtime_version_count = FleetOptions::kMaxContainerRuntimeVersions;
  }));
}

TEST(FleetGenerator, LargestCataloguesGiveDistinctValues) {
  FleetOptions options{
      .region_count = FleetOptions::kMaxRegions,
      .zone_count = 26 * FleetOptions::kMaxRegions,
      .hardware_type_count = FleetOptions::kMaxHardwareTypes,
      .os_image_count = FleetOptions::kMaxOsImages,
      .kernel_version_count = 4 * FleetOptions::kMaxOsImages,
      .agent_version_count = FleetOptions::kMaxAgentVersions,
      .container_runtime_version_count = FleetOptions::kMaxContainerRuntimeVersions,
      .customer_count = 100,
      .popularity_skew = 0};
  FleetGenerator fleet = MustCreate(options);
  std::set<std::string> zones, hardware, kernels, agents, customers;
  ForEachNode(fleet, 100'000, [&](uint64_t, const NodeSpec& node) {
    zones.emplace(Label(node, "topology.kubernetes.io/zone"));
    hardware.emplace(Label(node, "node.kubernetes.io/instance-type"));
    customers.emplace(Label(node, "customer"));
    kernels.insert(node.kernel_version);
    agents.insert(node.agent_version);
  });
  // Distinct indices into each catalogue must give distinct strings.
  EXPECT_EQ(zones.size(), std::min<size_t>(2600, options.site_count));
  EXPECT_EQ(hardware.size(), FleetOptions::kMaxHardwareTypes);
  EXPECT_EQ(kernels.size(), 4 * FleetOptions::kMaxOsImages);
  EXPECT_EQ(agents.size(), FleetOptions::kMaxAgentVersions);
  EXPECT_EQ(customers.size(), 100u);
}

TEST(FleetGenerator, DescribeStatesTheCardinalities) {
  FleetGenerator fleet = MustCreate();
  std::string text = fleet.Describe();
  for (const char* want : {"seed 1", "2000, uniform", "10 / 40", "24, Zipf", "12, Zipf",
                           "16, follow the OS image", "8, Zipf", "6, Zipf", "prod 90%"}) {
    EXPECT_NE(text.find(want), std::string::npos) << want << " missing from\n" << text;
  }
  EXPECT_NE(text.find(fleet.Node(0).name), std::string::npos) << text;
}

}  // namespace
}  // namespace kole::edge
