#include "edge/fleet_generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <string_view>

namespace kole::edge {
namespace {

// ---------------------------------------------------------------------------
// Hashing. Everything random is drawn from splitmix64 streams keyed by the
// seed and the node index, so node i needs no knowledge of nodes 0..i-1.

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15;

// The splitmix64 finaliser: a bijection on 64-bit values.
constexpr uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9;
  x ^= x >> 27;
  x *= 0x94d049bb133111eb;
  x ^= x >> 31;
  return x;
}

// A bijection on 32-bit values (xorshift-multiply, every step invertible).
// Identifiers that must be unique embed Perm32(index ^ key): distinct indices
// below 2^32 give distinct outputs, which is what proves uniqueness, while the
// output still looks random.
constexpr uint32_t Perm32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352d;
  x ^= x >> 15;
  x *= 0x846ca68b;
  x ^= x >> 16;
  return x;
}

// The splitmix64 generator, started at a per-node state.
class Stream {
 public:
  explicit Stream(uint64_t state) : state_(state) {}
  uint64_t Next() {
    state_ += kGolden;
    return Mix64(state_);
  }

 private:
  uint64_t state_;
};

// Maps a uniform 64-bit value onto [0, n) without the bias or the division of
// r % n (Lemire's multiply-high reduction).
uint32_t Uniform(uint64_t r, size_t n) {
  return static_cast<uint32_t>((static_cast<unsigned __int128>(r) * n) >> 64);
}

uint32_t Pick(const std::vector<uint64_t>& cdf, uint64_t r) {
  size_t i = std::upper_bound(cdf.begin(), cdf.end(), r) - cdf.begin();
  return static_cast<uint32_t>(std::min(i, cdf.size() - 1));
}

std::vector<uint64_t> ZipfCdf(size_t n, double skew) {
  std::vector<double> weights(n);
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    weights[i] = 1.0 / std::pow(static_cast<double>(i + 1), skew);
    total += weights[i];
  }
  std::vector<uint64_t> cdf(n);
  double cumulative = 0;
  for (size_t i = 0; i < n; ++i) {
    cumulative += weights[i];
    double scaled = cumulative / total * 18446744073709551616.0;  // 2^64.
    // The last threshold is exactly the maximum so that every r maps to some item.
    cdf[i] = (i + 1 == n || scaled >= 18446744073709551615.0) ? UINT64_MAX
                                                              : static_cast<uint64_t>(scaled);
  }
  return cdf;
}

double Share(const std::vector<uint64_t>& cdf, size_t i) {
  uint64_t low = i == 0 ? 0 : cdf[i - 1];
  return 100.0 * static_cast<double>(cdf[i] - low) / 18446744073709551616.0;
}

constexpr char kHex[] = "0123456789abcdef";

void AppendHex(uint64_t value, int digits, std::string* out) {
  for (int shift = 4 * (digits - 1); shift >= 0; shift -= 4)
    out->push_back(kHex[(value >> shift) & 15]);
}

// Sets the version nibble to 4 and the variant bits to 10, as a random
// (version 4) UUID has them. Leaves the top 32 bits of `high` and the low 32
// bits of `low` alone: those carry the bijections that make ids unique.
void MakeUuidV4(uint64_t* high, uint64_t* low) {
  *high = (*high & ~uint64_t{0xf000}) | 0x4000;
  *low = (*low & ~(uint64_t{3} << 62)) | (uint64_t{2} << 62);
}

void WriteUuid(uint64_t high, uint64_t low, std::string* out) {
  out->clear();
  AppendHex(high >> 32, 8, out);
  out->push_back('-');
  AppendHex(high >> 16, 4, out);
  out->push_back('-');
  AppendHex(high, 4, out);
  out->push_back('-');
  AppendHex(low >> 48, 4, out);
  out->push_back('-');
  AppendHex(low, 12, out);
}

void AppendDecimal(uint32_t value, std::string* out) {
  char digits[10];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  while (n > 0) out->push_back(digits[--n]);
}

// ---------------------------------------------------------------------------
// Catalogues, each in popularity order: under Zipf skew entry 0 is the most
// common. Options choose a prefix of each.

struct HardwareModel {
  const char* name;
  const char* arch;
  int cpus;        // Logical CPUs, as the kernel reports them.
  int memory_mib;  // Installed memory.
  int disk_gb;     // Root disk, decimal gigabytes as sold.
};

constexpr HardwareModel kHardware[] = {
    {"rpi4-4g", "arm64", 4, 4096, 32},
    {"nuc11-16g", "amd64", 8, 16384, 256},
    {"rpi4-8g", "arm64", 4, 8192, 64},
    {"orin-nano-8g", "arm64", 6, 8192, 128},
    {"nuc12-32g", "amd64", 16, 32768, 512},
    {"rpi5-8g", "arm64", 4, 8192, 64},
    {"rpi4-2g", "arm64", 4, 2048, 32},
    {"imx8mp-4g", "arm64", 4, 4096, 16},
    {"x6425e-8g", "amd64", 4, 8192, 64},
    {"rpi3b-1g", "arm", 4, 1024, 16},
    {"orin-nx-16g", "arm64", 8, 16384, 256},
    {"xeon-d2123-64g", "amd64", 8, 65536, 480},
    {"nuc13-64g", "amd64", 16, 65536, 1000},
    {"rpi5-4g", "arm64", 4, 4096, 32},
    {"bbb-512m", "arm", 1, 512, 4},
    {"agx-orin-32g", "arm64", 12, 32768, 64},
    {"epyc3251-64g", "amd64", 16, 65536, 960},
    {"cm4-4g", "arm64", 4, 4096, 32},
    {"imx8mm-2g", "arm64", 4, 2048, 16},
    {"j4125-8g", "amd64", 4, 8192, 128},
    {"rk3588-16g", "arm64", 8, 16384, 128},
    {"xeon-d2183-128g", "amd64", 32, 131072, 1920},
    {"imx6q-1g", "arm", 4, 1024, 8},
    {"altra-q64-256g", "arm64", 64, 262144, 3840},
    {"rpi5-16g", "arm64", 4, 16384, 128},
    {"nuc14-96g", "amd64", 22, 98304, 2000},
    {"orin-nano-4g", "arm64", 6, 4096, 64},
    {"jetson-nano-4g", "arm64", 4, 4096, 32},
    {"xeon-e2388g-64g", "amd64", 16, 65536, 960},
    {"rk3568-4g", "arm64", 4, 4096, 32},
    {"imx93-2g", "arm64", 2, 2048, 16},
    {"epyc8124p-256g", "amd64", 32, 262144, 3840},
};
static_assert(std::size(kHardware) == FleetOptions::kMaxHardwareTypes);

struct OsImage {
  const char* name;
  const char* kernel_format;  // "{}" takes the release number.
  int first_release;
};

// Kernel strings leave out the architecture suffix some distributions add
// (Debian's "-arm64"), so that a kernel version is one value fleet-wide.
constexpr OsImage kOsImages[] = {
    {"Ubuntu 22.04.4 LTS", "5.15.0-{}-generic", 105},
    {"Debian GNU/Linux 12 (bookworm)", "6.1.0-{}", 21},
    {"Raspbian GNU/Linux 11 (bullseye)", "6.1.{}-v8+", 21},
    {"Ubuntu 24.04 LTS", "6.8.0-{}-generic", 36},
    {"Flatcar Container Linux by Kinvolk 3815.2.2 (Oklo)", "6.1.{}-flatcar", 90},
    {"Talos (v1.7.5)", "6.6.{}-talos", 32},
    {"Ubuntu 20.04.6 LTS", "5.4.0-{}-generic", 182},
    {"Poky (Yocto Project Reference Distro) 4.0.17", "5.15.{}-yocto-standard", 150},
    {"Debian GNU/Linux 11 (bullseye)", "5.10.0-{}", 28},
    {"Fedora CoreOS 40.20240616.3.0", "6.8.{}-300.fc40", 11},
    {"Rocky Linux 9.4 (Blue Onyx)", "5.14.0-427.{}.1.el9_4", 13},
    {"SUSE Linux Enterprise Micro 5.5", "5.14.21-150500.55.{}-default", 59},
    {"Ubuntu Core 22", "5.15.0-{}-raspi", 1046},
    {"Alpine Linux v3.20", "6.6.{}-0-lts", 31},
    {"Red Hat Enterprise Linux 9.3 (Plow)", "5.14.0-362.{}.1.el9_3", 18},
    {"Flatcar Container Linux by Kinvolk 3760.2.0 (Oklo)", "6.1.{}-flatcar", 77},
    {"Talos (v1.6.7)", "6.1.{}-talos", 80},
    {"openSUSE Leap Micro 5.4", "5.14.21-150400.24.{}-default", 100},
    {"Debian GNU/Linux 10 (buster)", "4.19.0-{}", 25},
    {"Ubuntu 18.04.6 LTS", "4.15.0-{}-generic", 213},
};
static_assert(std::size(kOsImages) == FleetOptions::kMaxOsImages);

constexpr const char* kRuntimes[] = {
    "containerd://1.7.18", "containerd://1.7.13", "containerd://1.6.33", "cri-o://1.30.2",
    "containerd://1.6.28", "containerd://2.0.0",  "cri-o://1.29.5",      "containerd://1.7.2",
    "docker://24.0.7",     "cri-o://1.28.7",      "containerd://1.5.13", "cri-o://1.27.4",
};
static_assert(std::size(kRuntimes) == FleetOptions::kMaxContainerRuntimeVersions);

// Region names are "<geo>-<n>"; each geo has its own site city codes.
struct Geo {
  const char* name;
  const char* cities[4];
};
constexpr Geo kGeos[] = {
    {"us-east", {"nyc", "bos", "atl", "mia"}},      {"eu-central", {"fra", "ams", "waw", "vie"}},
    {"us-west", {"sfo", "sea", "lax", "den"}},      {"eu-west", {"lon", "dub", "par", "mad"}},
    {"ap-northeast", {"tyo", "sel", "osa", "tpe"}}, {"ap-southeast", {"sin", "syd", "jkt", "bkk"}},
    {"sa-east", {"sao", "rio", "bog", "scl"}},      {"ca-central", {"yyz", "yul", "yvr", "yyc"}},
    {"ap-south", {"bom", "del", "blr", "hyd"}},     {"me-central", {"dxb", "doh", "ruh", "tlv"}},
};

constexpr const char* kCustomers[] = {
    "acme",     "globex",     "initech",        "umbrella",  "hooli",  "soylent",
    "wonka",    "tyrell",     "stark",          "wayne",     "oscorp", "aperture",
    "vandelay", "pied-piper", "dunder-mifflin", "cyberdyne",
};

constexpr const char* kTiers[] = {"prod", "staging", "canary"};

// The annotation the TTL controller puts on every node of a real cluster.
constexpr std::string_view kAnnotationKey = "node.alpha.kubernetes.io/ttl";
constexpr std::string_view kAnnotationValue = "0";

// Label keys in sorted order; FillNode() writes the values in this order.
constexpr std::string_view kLabelKeys[] = {
    "customer",
    "edge.kole.io/site",
    "kubernetes.io/arch",
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "node.kubernetes.io/instance-type",
    "tier",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
};
constexpr size_t kLabelCount = std::size(kLabelKeys);

// ---------------------------------------------------------------------------
// Quantities, computed once per hardware type in the units kubelet reports.

// Memory the kernel reports: installed memory minus firmware and kernel
// reservations (a 4 GiB Raspberry Pi reports 3906Mi).
int ReportedMemoryMib(int installed_mib) {
  return installed_mib - installed_mib / 64 - std::min(126, installed_mib / 32);
}

// CPU reserved for the system and the agent, GKE's sliding scale in
// millicores: 6% of the first core, 1% of the second, 0.5% of the next two,
// 0.25% of the rest.
int ReservedMillicpu(int cpus) {
  double reserved = 60;
  if (cpus > 1) reserved += 10;
  if (cpus > 2) reserved += 5 * std::min(cpus - 2, 2);
  if (cpus > 4) reserved += 2.5 * (cpus - 4);
  return static_cast<int>(reserved);
}

std::pair<StringPairs, StringPairs> Quantities(const HardwareModel& model) {
  const int memory_mib = ReportedMemoryMib(model.memory_mib);
  // 100Mi hard eviction threshold plus a tenth of memory (at most 1Gi) reserved.
  const int allocatable_memory_mib = memory_mib - 100 - std::min(1024, memory_mib / 10);
  // The root filesystem keeps about 94% of the disk as sold; allocatable
  // leaves the 10% nodefs.available eviction threshold free.
  const uint64_t storage_kib = static_cast<uint64_t>(model.disk_gb) * 916'731;
  const uint64_t storage_bytes = storage_kib * 1024;
  const int pods = model.memory_mib <= 1024 ? 16 : model.memory_mib <= 2048 ? 32 : 110;

  // Huge page sizes the architecture's kernel offers, as kubelet lists them.
  std::vector<std::string_view> hugepages;
  if (std::string_view(model.arch) == "amd64") hugepages = {"hugepages-1Gi", "hugepages-2Mi"};
  if (std::string_view(model.arch) == "arm64") {
    hugepages = {"hugepages-1Gi", "hugepages-2Mi", "hugepages-32Mi", "hugepages-64Ki"};
  }

  StringPairs capacity;
  StringPairs allocatable;
  capacity.emplace_back("cpu", fmt::format("{}", model.cpus));
  allocatable.emplace_back("cpu",
                           fmt::format("{}m", model.cpus * 1000 - ReservedMillicpu(model.cpus)));
  capacity.emplace_back("ephemeral-storage", fmt::format("{}Ki", storage_kib));
  allocatable.emplace_back("ephemeral-storage",
                           fmt::format("{}", storage_bytes - storage_bytes / 10));
  for (std::string_view size : hugepages) {
    capacity.emplace_back(size, "0");
    allocatable.emplace_back(size, "0");
  }
  capacity.emplace_back("memory", fmt::format("{}Mi", memory_mib));
  allocatable.emplace_back("memory", fmt::format("{}Mi", allocatable_memory_mib));
  capacity.emplace_back("pods", fmt::format("{}", pods));
  allocatable.emplace_back("pods", fmt::format("{}", pods));
  return {std::move(capacity), std::move(allocatable)};
}

absl::Status CheckCount(std::string_view field, uint64_t value, uint64_t low, uint64_t high) {
  if (value >= low && value <= high) return absl::OkStatus();
  return absl::InvalidArgumentError(
      fmt::format("FleetOptions.{} is {}, want a value in [{}, {}]", field, value, low, high));
}

}  // namespace

absl::Status FleetOptions::Validate() const {
  const std::pair<std::string_view, std::pair<uint64_t, uint64_t>> checks[] = {
      {"site_count", {site_count, kMaxSites}},
      {"region_count", {region_count, kMaxRegions}},
      {"hardware_type_count", {hardware_type_count, kMaxHardwareTypes}},
      {"os_image_count", {os_image_count, kMaxOsImages}},
      {"agent_version_count", {agent_version_count, kMaxAgentVersions}},
      {"container_runtime_version_count",
       {container_runtime_version_count, kMaxContainerRuntimeVersions}},
      {"customer_count", {customer_count, kMaxCustomers}},
  };
  for (const auto& [field, value_and_max] : checks) {
    absl::Status status = CheckCount(field, value_and_max.first, 1, value_and_max.second);
    if (!status.ok()) return status;
  }
  // Each region needs a zone, and zone suffixes run out after z.
  absl::Status status = CheckCount("zone_count", zone_count, region_count,
                                   uint64_t{region_count} * kMaxZonesPerRegion);
  if (!status.ok()) return status;
  status = CheckCount("kernel_version_count", kernel_version_count, 1,
                      uint64_t{os_image_count} * kMaxKernelVersionsPerOsImage);
  if (!status.ok()) return status;
  // Written so that NaN fails too.
  if (!(popularity_skew >= 0 && popularity_skew <= kMaxPopularitySkew)) {
    return absl::InvalidArgumentError(
        fmt::format("FleetOptions.popularity_skew is {}, want a value in [0, {}]", popularity_skew,
                    kMaxPopularitySkew));
  }
  return absl::OkStatus();
}

absl::StatusOr<FleetGenerator> FleetGenerator::Create(const FleetOptions& options) {
  absl::Status status = options.Validate();
  if (!status.ok()) return status;
  return FleetGenerator(options);
}

FleetGenerator::FleetGenerator(const FleetOptions& options) : options_(options) {
  // Seed-derived keys.
  Stream keys(Mix64(options.seed ^ 0x6b6f6c652d666c74));  // "kole-flt".
  node_key_ = keys.Next();
  boot_key_ = keys.Next();
  name_key_ = static_cast<uint32_t>(keys.Next());
  machine_key_ = static_cast<uint32_t>(keys.Next());
  uuid_key_ = static_cast<uint32_t>(keys.Next());
  boot_index_key_ = static_cast<uint32_t>(keys.Next());
  const uint64_t site_key = keys.Next();

  // Topology: zone z lies in region z % regions and takes the next free
  // letter there, so "us-east-1a", "eu-central-1a", ..., "us-east-1b", ...
  for (uint32_t r = 0; r < options.region_count; ++r) {
    regions_.push_back(
        fmt::format("{}-{}", kGeos[r % std::size(kGeos)].name, r / std::size(kGeos) + 1));
  }
  for (uint32_t z = 0; z < options.zone_count; ++z) {
    uint32_t region = z % options.region_count;
    zone_region_.push_back(region);
    zones_.push_back(
        fmt::format("{}{}", regions_[region], static_cast<char>('a' + z / options.region_count)));
  }

  // Customers own sites with Zipf-skewed popularity: a few big chains and a
  // tail of small ones.
  for (uint32_t c = 0; c < options.customer_count; ++c) {
    const char* base = kCustomers[c % std::size(kCustomers)];
    customers_.push_back(c < std::size(kCustomers)
                             ? std::string(base)
                             : fmt::format("{}-{}", base, c / std::size(kCustomers) + 1));
  }
  customer_cdf_ = ZipfCdf(options.customer_count, options.popularity_skew);

  // Sites spread evenly over zones. The number in the site name is the site
  // index itself, so site names are unique whatever the city.
  sites_.reserve(options.site_count);
  for (uint32_t s = 0; s < options.site_count; ++s) {
    uint32_t zone = s % options.zone_count;
    const Geo& geo = kGeos[zone_region_[zone] % std::size(kGeos)];
    const char* city = geo.cities[(s / options.zone_count) % std::size(geo.cities)];
    sites_.push_back(
        {fmt::format("{}-{:04}", city, s), zone, Pick(customer_cdf_, Mix64(site_key ^ s))});
  }

  for (uint32_t h = 0; h < options.hardware_type_count; ++h) {
    auto [capacity, allocatable] = Quantities(kHardware[h]);
    hardware_.push_back(
        {kHardware[h].name, kHardware[h].arch, std::move(capacity), std::move(allocatable)});
  }
  hardware_cdf_ = ZipfCdf(options.hardware_type_count, options.popularity_skew);

  // Kernel k belongs to OS image k % images and is that image's release
  // first_release + k / images. With at least as many kernels as images,
  // image o runs kernels o, o + images, ...; with fewer, image o borrows
  // kernel o % kernels. Either way every kernel is reachable.
  const uint32_t images = options.os_image_count;
  const uint32_t kernels = options.kernel_version_count;
  for (uint32_t o = 0; o < images; ++o) os_images_.push_back(kOsImages[o].name);
  for (uint32_t k = 0; k < kernels; ++k) {
    const OsImage& owner = kOsImages[k % images];
    kernels_.push_back(
        fmt::format(fmt::runtime(owner.kernel_format), owner.first_release + k / images));
  }
  kernels_of_os_.resize(images);
  for (uint32_t o = 0; o < images; ++o) {
    if (kernels < images) {
      kernels_of_os_[o].push_back(o % kernels);
    } else {
      for (uint32_t k = o; k < kernels; k += images) kernels_of_os_[o].push_back(k);
    }
  }
  os_cdf_ = ZipfCdf(images, options.popularity_skew);

  // Agent versions, newest first: v1.12.2, v1.12.1, v1.12.0, v1.11.2, ...
  for (uint32_t a = 0; a < options.agent_version_count; ++a) {
    agents_.push_back(fmt::format("v1.{}.{}-kole", 12 - a / 3, 2 - a % 3));
  }
  agent_cdf_ = ZipfCdf(options.agent_version_count, options.popularity_skew);

  for (uint32_t r = 0; r < options.container_runtime_version_count; ++r) {
    runtimes_.push_back(kRuntimes[r]);
  }
  runtime_cdf_ = ZipfCdf(options.container_runtime_version_count, options.popularity_skew);
}

void FleetGenerator::FillNode(uint64_t index, uint32_t boot, NodeSpec* node) const {
  assert(index < kMaxNodes);
  const uint32_t index32 = static_cast<uint32_t>(index);

  // Draws, always in this order: changing it changes every fleet.
  Stream stream(Mix64(index ^ node_key_));
  const Site& site = sites_[Uniform(stream.Next(), sites_.size())];
  const Hardware& hardware = hardware_[Pick(hardware_cdf_, stream.Next())];
  const uint32_t os = Pick(os_cdf_, stream.Next());
  const std::vector<uint32_t>& os_kernels = kernels_of_os_[os];
  const std::string& kernel = kernels_[os_kernels[Uniform(stream.Next(), os_kernels.size())]];
  const std::string& agent = agents_[Pick(agent_cdf_, stream.Next())];
  const std::string& runtime = runtimes_[Pick(runtime_cdf_, stream.Next())];
  const uint32_t tier_draw = Uniform(stream.Next(), 100);
  const char* tier = tier_draw < 90 ? kTiers[0] : tier_draw < 98 ? kTiers[1] : kTiers[2];
  uint64_t machine_high = stream.Next();
  uint64_t machine_low = stream.Next();
  uint64_t uuid_high = stream.Next();
  uint64_t uuid_low = stream.Next();
  const std::string& zone = zones_[site.zone];
  const std::string& region = regions_[zone_region_[site.zone]];

  // Name: "<site>-<hardware>-<serial>". The serial is a bijection of the
  // index, fixed-width at the end of the name, so names are unique.
  std::string& name = node->name;
  name.assign(site.name);
  name.push_back('-');
  name.append(hardware.name);
  name.push_back('-');
  AppendHex(Perm32(index32 ^ name_key_), 8, &name);

  node->labels.resize(kLabelCount);
  const std::string_view values[kLabelCount] = {
      customers_[site.customer],
      site.name,
      hardware.arch,
      name,
      "linux",
      hardware.name,
      tier,
      region,
      zone,
  };
  for (size_t i = 0; i < kLabelCount; ++i) {
    node->labels[i].first.assign(kLabelKeys[i]);
    node->labels[i].second.assign(values[i]);
  }
  node->annotations.resize(1);
  node->annotations[0].first.assign(kAnnotationKey);
  node->annotations[0].second.assign(kAnnotationValue);

  // Identifiers: the top 32 bits carry Perm32 of the index (uniqueness), the
  // rest is random.
  machine_high = (uint64_t{Perm32(index32 ^ machine_key_)} << 32) | (machine_high & 0xffffffff);
  MakeUuidV4(&machine_high, &machine_low);
  node->machine_id.clear();
  AppendHex(machine_high, 16, &node->machine_id);
  AppendHex(machine_low, 16, &node->machine_id);
  uuid_high = (uint64_t{Perm32(index32 ^ uuid_key_)} << 32) | (uuid_high & 0xffffffff);
  MakeUuidV4(&uuid_high, &uuid_low);
  WriteUuid(uuid_high, uuid_low, &node->system_uuid);
  WriteBootId(index, boot, &node->boot_id);

  node->kernel_version.assign(kernel);
  node->os_image.assign(os_images_[os]);
  node->container_runtime_version.assign(runtime);
  node->agent_version.assign(agent);
  node->operating_system.assign("linux");
  node->architecture.assign(hardware.arch);
  node->capacity = hardware.capacity;
  node->allocatable = hardware.allocatable;

  // InternalIP 10.0.0.1 + index; index < kMaxNodes keeps it below the
  // broadcast address.
  node->addresses.resize(2);
  node->addresses[0].type.assign("InternalIP");
  std::string& ip = node->addresses[0].address;
  const uint32_t host = index32 + 1;
  ip.assign("10.");
  AppendDecimal((host >> 16) & 255, &ip);
  ip.push_back('.');
  AppendDecimal((host >> 8) & 255, &ip);
  ip.push_back('.');
  AppendDecimal(host & 255, &ip);
  node->addresses[1].type.assign("Hostname");
  node->addresses[1].address.assign(name);
}

void FleetGenerator::WriteName(uint64_t index, std::string* out) const {
  assert(index < kMaxNodes);
  // The same first two draws as FillNode(), which decide site and hardware.
  Stream stream(Mix64(index ^ node_key_));
  const Site& site = sites_[Uniform(stream.Next(), sites_.size())];
  const Hardware& hardware = hardware_[Pick(hardware_cdf_, stream.Next())];
  out->assign(site.name);
  out->push_back('-');
  out->append(hardware.name);
  out->push_back('-');
  AppendHex(Perm32(static_cast<uint32_t>(index) ^ name_key_), 8, out);
}

void FleetGenerator::WriteBootId(uint64_t index, uint32_t boot, std::string* out) const {
  const uint32_t index32 = static_cast<uint32_t>(index);
  const uint64_t per_node = Mix64(index ^ boot_key_);
  Stream stream(per_node + boot * kGolden * 2);
  uint64_t high =
      (uint64_t{Perm32(index32 ^ boot_index_key_)} << 32) | (stream.Next() & 0xffffffff);
  // For a fixed node, the low 32 bits are a bijection of the boot counter.
  uint64_t low = (stream.Next() & ~uint64_t{0xffffffff}) |
                 Perm32(boot ^ static_cast<uint32_t>(per_node >> 32));
  MakeUuidV4(&high, &low);
  WriteUuid(high, low, out);
}

NodeSpec FleetGenerator::Node(uint64_t index, uint32_t boot) const {
  NodeSpec node;
  FillNode(index, boot, &node);
  return node;
}

std::string FleetGenerator::BootId(uint64_t index, uint32_t boot) const {
  assert(index < kMaxNodes);
  std::string out;
  WriteBootId(index, boot, &out);
  return out;
}

std::string FleetGenerator::Describe() const {
  const FleetOptions& o = options_;
  const uint32_t zones_low = o.zone_count / o.region_count;
  const uint32_t zones_high = (o.zone_count + o.region_count - 1) / o.region_count;
  const std::string zones_per_region = zones_low == zones_high
                                           ? fmt::format("{}", zones_low)
                                           : fmt::format("{}-{}", zones_low, zones_high);
  const size_t kernels_low = kernels_of_os_.back().size();
  const size_t kernels_high = kernels_of_os_.front().size();
  const std::string kernels_per_image = kernels_low == kernels_high
                                            ? fmt::format("{}", kernels_low)
                                            : fmt::format("{}-{}", kernels_low, kernels_high);

  std::string out;
  auto line = [&out](std::string_view what, const std::string& text) {
    fmt::format_to(std::back_inserter(out), "  {:<26}{}\n", what, text);
  };
  auto zipf = [&o](const std::vector<uint64_t>& cdf, const std::string& top) {
    return fmt::format("Zipf s={:.2f}, top {} {:.1f}%, last {:.1f}%", o.popularity_skew, top,
                       Share(cdf, 0), Share(cdf, cdf.size() - 1));
  };

  fmt::format_to(std::back_inserter(out), "KOLE simulated fleet, seed {}\n", o.seed);
  line("sites", fmt::format("{}, uniform; each in one zone, owned by one customer", o.site_count));
  line("regions / zones",
       fmt::format("{} / {} ({} zones a region)", o.region_count, o.zone_count, zones_per_region));
  line("customers",
       fmt::format("{} over sites, {}", o.customer_count, zipf(customer_cdf_, customers_[0])));
  line("hardware types", fmt::format("{}, {}; decides arch and capacity", o.hardware_type_count,
                                     zipf(hardware_cdf_, hardware_[0].name)));
  line("OS images",
       fmt::format("{}, {}", o.os_image_count, zipf(os_cdf_, "\"" + os_images_[0] + "\"")));
  line("kernel versions", fmt::format("{}, follow the OS image ({} an image)",
                                      o.kernel_version_count, kernels_per_image));
  line("agent versions",
       fmt::format("{}, {}", o.agent_version_count, zipf(agent_cdf_, agents_[0])));
  line("runtime versions",
       fmt::format("{}, {}", o.container_runtime_version_count, zipf(runtime_cdf_, runtimes_[0])));
  line("tiers", "prod 90%, staging 8%, canary 2%");
  line("names", fmt::format("<site>-<hardware>-<serial>, e.g. {}", Node(0).name));
  line("addresses",
       fmt::format("InternalIP 10.0.0.1 + index (index < {}), Hostname = name", kMaxNodes));
  return out;
}

}  // namespace kole::edge
