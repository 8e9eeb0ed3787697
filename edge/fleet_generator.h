#pragma once

// The seeded fleet generator: one description of a simulated edge fleet shared
// by the store benchmark, the edge simulator and the peer benchmark against
// upstream Kubernetes, so all three see the same nodes.
//
// Every node is a pure function of (options, index, boot). The generator keeps
// no per-node state, so a simulator can produce any slice of the fleet
// (for example indices [250000, 500000) on the second of four hosts) without
// generating the nodes before it:
//
//   absl::StatusOr<FleetGenerator> fleet = FleetGenerator::Create(FleetOptions{.seed = 7});
//   if (!fleet.ok()) return fleet.status();
//   NodeSpec node;
//   for (uint64_t i = begin; i < end; ++i) {
//     fleet->FillNode(i, /*boot=*/0, &node);  // Reuses node's buffers.
//     Register(node);
//   }
//
// The output is stable for a given build of this file and given options. A
// change to the catalogues or to the hashing below changes every fleet, so it
// belongs in the release notes of the benchmarks.

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kole::edge {

// Cardinalities of the simulated fleet. The defaults look like a mid-size
// retail and industrial edge estate:
//
//   2000 sites, nodes spread uniformly over them; each site lies in one zone
//     and belongs to one customer
//   10 regions, 40 zones (4 a region)
//   24 hardware types (Raspberry Pi, Jetson, NUC, Xeon D, ...), Zipf-skewed;
//     the hardware type decides architecture and capacity
//   12 OS images, Zipf-skewed; 16 kernel versions, which follow the OS image
//   8 agent versions (kubeletVersion), Zipf-skewed: a current release and a
//     tail of stragglers
//   6 container runtime versions, Zipf-skewed
//   12 customers, Zipf-skewed over sites; 3 tiers (prod 90%, staging 8%,
//     canary 2%)
//
// "Zipf-skewed" means the item of rank r (0-based) has weight 1 / (r + 1)^s,
// with s = popularity_skew. FleetGenerator::Describe() prints the resulting
// shares.
struct FleetOptions {
  uint64_t seed = 1;
  uint32_t site_count = 2000;
  uint32_t region_count = 10;
  uint32_t zone_count = 40;
  uint32_t hardware_type_count = 24;
  uint32_t os_image_count = 12;
  uint32_t kernel_version_count = 16;
  uint32_t agent_version_count = 8;
  uint32_t container_runtime_version_count = 6;
  uint32_t customer_count = 12;
  double popularity_skew = 1.0;

  // Upper bounds of the catalogues the generator draws from.
  static constexpr uint32_t kMaxSites = 1'000'000;
  static constexpr uint32_t kMaxRegions = 100;
  static constexpr uint32_t kMaxZonesPerRegion = 26;  // Zone suffixes a..z.
  static constexpr uint32_t kMaxHardwareTypes = 32;
  static constexpr uint32_t kMaxOsImages = 20;
  static constexpr uint32_t kMaxKernelVersionsPerOsImage = 4;
  static constexpr uint32_t kMaxAgentVersions = 36;
  static constexpr uint32_t kMaxContainerRuntimeVersions = 12;
  static constexpr uint32_t kMaxCustomers = 10'000;
  static constexpr double kMaxPopularitySkew = 4.0;

  // Returns InvalidArgument naming the first field outside its bounds: every
  // count must be at least 1 and at most its kMax; zone_count must lie in
  // [region_count, 26 * region_count]; kernel_version_count must not exceed
  // 4 * os_image_count; popularity_skew must lie in [0, 4] (0 is uniform).
  absl::Status Validate() const;
};

// A list of (key, value) pairs, sorted by key: the shape of metadata.labels,
// status.capacity and the like.
using StringPairs = std::vector<std::pair<std::string, std::string>>;

// One entry of status.addresses.
struct NodeAddress {
  std::string type;  // "InternalIP" or "Hostname".
  std::string address;

  bool operator==(const NodeAddress&) const = default;
};

// The static part of one core/v1 Node, as the node's agent would register it.
// Conditions, heartbeats and other state that changes at run time are the
// simulator's business, not the generator's. Plain data; every field is set
// by FleetGenerator::FillNode().
struct NodeSpec {
  // metadata.name: "<site>-<hardware>-<serial>", e.g. "fra-0042-rpi4-4g-3f9a1c2e".
  // Unique per index, at most 63 characters, a DNS-1123 label (and therefore
  // a subdomain), so it is also valid as the kubernetes.io/hostname value.
  std::string name;
  // metadata.labels, sorted by key: customer, edge.kole.io/site,
  // kubernetes.io/{arch,hostname,os}, node.kubernetes.io/instance-type, tier,
  // topology.kubernetes.io/{region,zone}.
  StringPairs labels;
  // metadata.annotations, sorted by key; the same for every node.
  StringPairs annotations;

  // status.nodeInfo.
  std::string machine_id;   // 32 lowercase hex digits, unique per index.
  std::string system_uuid;  // Canonical lowercase UUID, unique per index.
  std::string boot_id;      // Canonical lowercase UUID, unique per (index, boot).
  std::string kernel_version;
  std::string os_image;
  std::string container_runtime_version;  // "containerd://1.7.18" and the like.
  std::string agent_version;              // Goes in kubeletVersion.
  std::string operating_system;           // Always "linux".
  std::string architecture;               // "amd64", "arm64" or "arm".

  // status.capacity and status.allocatable, sorted by resource name; both are
  // decided by the hardware type.
  StringPairs capacity;
  StringPairs allocatable;

  // status.addresses: InternalIP (unique per index, inside 10.0.0.0/8), then
  // Hostname (the node name). Data only: nothing ever connects to them.
  std::vector<NodeAddress> addresses;

  bool operator==(const NodeSpec&) const = default;
};

// FleetGenerator turns (options, index) into a NodeSpec deterministically.
//
// Thread safety: immutable after Create(); all methods are const and may be
// called concurrently from any number of threads. Copies are independent.
//
// Uniqueness: name, machine_id, system_uuid and the InternalIP each embed a
// bijection of the index, so they are distinct for distinct indices below
// kMaxNodes (not merely unlikely to collide); boot_id embeds a bijection of
// the index and, for a fixed index, a bijection of the boot counter.
//
// Cost: Create() builds small catalogue tables (O(site_count) strings). A
// FillNode() into a reused NodeSpec does no allocation once the NodeSpec's
// buffers have grown; Node() allocates a fresh NodeSpec each time.
class FleetGenerator {
 public:
  // Indices must stay below this: 10.0.0.0/8 has 2^24 addresses, minus the
  // network and broadcast address.
  static constexpr uint64_t kMaxNodes = (uint64_t{1} << 24) - 2;

  // Returns InvalidArgument when options.Validate() fails.
  static absl::StatusOr<FleetGenerator> Create(const FleetOptions& options);

  // Returns node `index` as it looks after its `boot`-th restart. Changing
  // `boot` changes only boot_id. REQUIRES: index < kMaxNodes.
  NodeSpec Node(uint64_t index, uint32_t boot = 0) const;

  // Same as Node(), written into *node so that its string and vector buffers
  // are reused; every field of *node is overwritten. REQUIRES: index < kMaxNodes.
  void FillNode(uint64_t index, uint32_t boot, NodeSpec* node) const;

  // Just the name of Node(index), written into *out (its buffer reused), for a
  // simulator that keeps names rather than whole nodes. REQUIRES: index < kMaxNodes.
  void WriteName(uint64_t index, std::string* out) const;

  // Just the boot_id of Node(index, boot), for a simulator that restarts a
  // node it has already registered. REQUIRES: index < kMaxNodes.
  std::string BootId(uint64_t index, uint32_t boot) const;

  // A multi-line, human-readable statement of the cardinalities and
  // popularity shares, for benchmark reports.
  std::string Describe() const;

  const FleetOptions& options() const { return options_; }

 private:
  struct Site {
    std::string name;  // "fra-0042".
    uint32_t zone;
    uint32_t customer;
  };
  struct Hardware {
    std::string name;  // Also the instance-type label.
    std::string arch;
    StringPairs capacity;
    StringPairs allocatable;
  };

  explicit FleetGenerator(const FleetOptions& options);

  void WriteBootId(uint64_t index, uint32_t boot, std::string* out) const;

  FleetOptions options_;

  // Keys derived from the seed, one per use, so that the bijections behind
  // different identifiers are unrelated.
  uint64_t node_key_;
  uint64_t boot_key_;
  uint32_t name_key_;
  uint32_t machine_key_;
  uint32_t uuid_key_;
  uint32_t boot_index_key_;

  std::vector<std::string> regions_;
  std::vector<std::string> zones_;
  std::vector<uint32_t> zone_region_;  // Zone index to region index.
  std::vector<std::string> customers_;
  std::vector<Site> sites_;
  std::vector<Hardware> hardware_;
  std::vector<std::string> os_images_;
  std::vector<std::string> kernels_;
  std::vector<std::vector<uint32_t>> kernels_of_os_;  // OS image to kernel indices.
  std::vector<std::string> agents_;
  std::vector<std::string> runtimes_;

  // Cumulative Zipf thresholds scaled to 2^64: item i is drawn for a uniform
  // 64-bit r when cdf[i-1] <= r < cdf[i].
  std::vector<uint64_t> hardware_cdf_;
  std::vector<uint64_t> os_cdf_;
  std::vector<uint64_t> agent_cdf_;
  std::vector<uint64_t> runtime_cdf_;
  std::vector<uint64_t> customer_cdf_;
};

}  // namespace kole::edge
