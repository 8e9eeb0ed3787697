#include "storage/node_record.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include "storage/node_view.h"

namespace kole::storage {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Parses 32 hex digits, with dashes at the UUID positions when `uuid` is set.
// `upper` reports the case; mixed case does not parse (it would not print back).
bool ParseHex16(std::string_view text, bool uuid, uint8_t out[16], bool* upper) {
  if (text.size() != (uuid ? 36u : 32u)) return false;
  bool saw_lower = false;
  bool saw_upper = false;
  int nibble = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (uuid && (i == 8 || i == 13 || i == 18 || i == 23)) {
      if (c != '-') return false;
      continue;
    }
    int digit = HexDigit(c);
    if (digit < 0) return false;
    saw_lower |= (c >= 'a' && c <= 'f');
    saw_upper |= (c >= 'A' && c <= 'F');
    if (nibble % 2 == 0) {
      out[nibble / 2] = static_cast<uint8_t>(digit << 4);
    } else {
      out[nibble / 2] |= static_cast<uint8_t>(digit);
    }
    ++nibble;
  }
  if (saw_lower && saw_upper) return false;
  *upper = saw_upper;
  return true;
}

std::string FormatIpv4String(uint32_t ip) {
  char buffer[16];
  return std::string(buffer, FormatIpv4(ip, buffer));
}

bool ParseIpv4(std::string_view text, uint32_t* out) {
  if (text.size() > 15) return false;
  char buffer[16];
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  in_addr addr;
  if (inet_pton(AF_INET, buffer, &addr) != 1) return false;
  *out = ntohl(addr.s_addr);
  // 0.0.0.0 is the "no address" marker, and inet_pton's canonical form must
  // print back to the same text.
  return *out != 0;
}

void AppendPairsTo(std::string& blob, const StringPairs& pairs) {
  for (const auto& [key, value] : pairs) {
    AppendBlobString(blob, key);
    AppendBlobString(blob, value);
  }
}

// splitmix64's finalizer: a bijection of 64-bit words.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

uint64_t Unmix(uint64_t x) {
  // Each step inverted, in reverse order.
  x ^= x >> 31 ^ x >> 62;
  x *= 0x319642b2d24d8ec3ull;  // Inverse of 0x94d049bb133111eb mod 2^64.
  x ^= x >> 27 ^ x >> 54;
  x *= 0x96de1b173f119089ull;  // Inverse of 0xbf58476d1ce4e5b9 mod 2^64.
  x ^= x >> 30 ^ x >> 60;
  return x;
}

}  // namespace

size_t FormatHex16(const uint8_t bytes[16], bool uuid, bool upper, char* out) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  size_t n = 0;
  for (int i = 0; i < 16; ++i) {
    if (uuid && (i == 4 || i == 6 || i == 8 || i == 10)) out[n++] = '-';
    out[n++] = digits[bytes[i] >> 4];
    out[n++] = digits[bytes[i] & 0xF];
  }
  return n;
}

size_t FormatIpv4(uint32_t ip, char* out) {
  char* end = out;
  for (int shift = 24; shift >= 0; shift -= 8) {
    end = std::to_chars(end, out + 15, (ip >> shift) & 0xFF).ptr;
    if (shift != 0) *end++ = '.';
  }
  return static_cast<size_t>(end - out);
}

StringPairs ReadPairs(std::string_view& in, size_t limit) {
  StringPairs pairs;
  std::string_view key, value;
  while (pairs.size() < limit && ReadBlobString(in, &key) && ReadBlobString(in, &value)) {
    pairs.emplace_back(std::string(key), std::string(value));
  }
  return pairs;
}

ConditionStatus ParseConditionStatus(std::string_view text) {
  if (text == "True") return ConditionStatus::kTrue;
  if (text == "False") return ConditionStatus::kFalse;
  return ConditionStatus::kUnknown;
}

UidKey UidKey::Random() {
  Uid a = Uid::Random();
  Uid b = Uid::Random();
  return UidKey(a.hi ^ b.lo, a.lo ^ b.hi);
}

Uid UidKey::FromVersion(uint64_t created_rv) const {
  // m carries the version bijectively. Its bits 12-15 are where the UUID
  // version nibble goes, so they move into the low word's spare bits.
  uint64_t m = Mix(created_rv ^ a_);
  uint64_t n = Mix(created_rv ^ b_);
  Uid uid;
  uid.hi = (m & ~0xF000ull) | 0x4000ull;
  uid.lo = (n & 0x3FFFFFFFFFFFFFF0ull) | ((m >> 12) & 0xF) | 0x8000000000000000ull;
  return uid;
}

uint64_t UidKey::ToVersion(const Uid& uid) const {
  uint64_t m = (uid.hi & ~0xF000ull) | ((uid.lo & 0xF) << 12);
  uint64_t rv = Unmix(m) ^ a_;
  return FromVersion(rv) == uid ? rv : 0;
}

void AppendBlobString(std::string& out, std::string_view value) {
  size_t n = value.size();
  while (n >= 0x80) {
    out += static_cast<char>((n & 0x7F) | 0x80);
    n >>= 7;
  }
  out += static_cast<char>(n);
  out.append(value);
}

bool ReadBlobString(std::string_view& in, std::string_view* value) {
  size_t n = 0;
  int shift = 0;
  while (true) {
    if (in.empty() || shift > 28) return false;
    uint8_t byte = static_cast<uint8_t>(in[0]);
    in.remove_prefix(1);
    n |= static_cast<size_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) break;
    shift += 7;
  }
  if (n > in.size()) return false;
  *value = in.substr(0, n);
  in.remove_prefix(n);
  return true;
}

bool SameVisibleContent(const NodeRecord& a, const NodeRecord& b) {
  NodeRecord x = a;
  NodeRecord y = b;
  for (NodeRecord* r : {&x, &y}) {
    r->resource_version = 0;
    r->live_sequence = 0;
    r->last_seen_s = 0;
  }
  return std::memcmp(&x, &y, sizeof(NodeRecord)) == 0;
}

uint32_t NodeCodec::Intern(std::string_view blob, std::vector<uint32_t>* new_blobs) const {
  bool created = false;
  uint32_t id = pool_->Intern(blob, &created);
  if (created) new_blobs->push_back(id);
  return id;
}

uint32_t NodeCodec::InternLabels(const StringPairs& labels, std::string_view name, uint16_t* flags,
                                 std::vector<uint32_t>* new_blobs) const {
  // A fleet has few distinct labels but many distinct combinations of them
  // (site x hardware x tier ...), so each key=value pair is interned on its
  // own and the set is the list of pair ids. The hostname label, unique per
  // node, is a flag when it equals the name.
  std::string blob;
  std::string pair;
  *flags &= ~kHostnameLabel;
  for (const auto& [key, value] : labels) {
    if (key == kHostnameLabelKey && value == name) {
      *flags |= kHostnameLabel;
      continue;
    }
    pair.clear();
    AppendBlobString(pair, key);
    AppendBlobString(pair, value);
    uint32_t id = Intern(pair, new_blobs);
    blob.append(reinterpret_cast<const char*>(&id), sizeof(id));
  }
  return Intern(blob, new_blobs);
}

void NodeCodec::ForEachLabel(
    const NodeRecord& r, absl::FunctionRef<bool(std::string_view, std::string_view)> visit) const {
  ForEachLabelPair(
      r, [&](uint32_t, std::string_view key, std::string_view value) { return visit(key, value); });
}

void NodeCodec::ForEachLabelPair(
    const NodeRecord& r,
    absl::FunctionRef<bool(uint32_t id, std::string_view key, std::string_view value)> visit)
    const {
  std::string_view ids = pool_->Get(r.labels);
  bool hostname_pending = (r.flags & kHostnameLabel) != 0;
  for (size_t at = 0; at + sizeof(uint32_t) <= ids.size(); at += sizeof(uint32_t)) {
    uint32_t id;
    std::memcpy(&id, ids.data() + at, sizeof(id));
    std::string_view pair = pool_->Get(id);
    std::string_view key, value;
    if (!ReadBlobString(pair, &key) || !ReadBlobString(pair, &value)) continue;
    if (hostname_pending && key > kHostnameLabelKey) {
      hostname_pending = false;
      if (!visit(BlobPool::kNone, kHostnameLabelKey, Name(r))) return;
    }
    if (!visit(id, key, value)) return;
  }
  if (hostname_pending) visit(BlobPool::kNone, kHostnameLabelKey, Name(r));
}

std::optional<std::string_view> NodeCodec::LabelValue(const NodeRecord& r,
                                                      std::string_view key) const {
  if (key == kHostnameLabelKey && (r.flags & kHostnameLabel)) return Name(r);
  std::optional<std::string_view> found;
  ForEachLabel(r, [&](std::string_view k, std::string_view v) {
    if (k != key) return true;
    found = v;
    return false;
  });
  return found;
}

uint32_t NodeCodec::InternPairs(const StringPairs& pairs, std::vector<uint32_t>* new_blobs) const {
  std::string blob;
  AppendPairsTo(blob, pairs);
  return Intern(blob, new_blobs);
}

uint32_t NodeCodec::InternTaints(const std::vector<Taint>& taints,
                                 std::vector<uint32_t>* new_blobs) const {
  std::string blob;
  for (const Taint& taint : taints) {
    AppendBlobString(blob, taint.key);
    AppendBlobString(blob, taint.value);
    AppendBlobString(blob, taint.effect);
  }
  return Intern(blob, new_blobs);
}

NodeRecord NodeCodec::Encode(const Node& node, std::vector<uint32_t>* new_blobs) const {
  NodeRecord r;
  std::memset(&r, 0, sizeof(r));
  r.created_rv = uid_key_.ToVersion(node.uid);
  r.created_s = static_cast<uint32_t>(node.creation_timestamp);
  r.labels = InternLabels(node.labels, node.name, &r.flags, new_blobs);
  NodeProfile profile;
  profile.annotations = InternPairs(node.annotations, new_blobs);
  profile.taints = InternTaints(node.taints, new_blobs);
  if (node.unschedulable) r.flags |= kUnschedulable;

  const NodeInfo& info = node.node_info;
  std::string blob;
  for (std::string_view s :
       {std::string_view(info.kernel_version), std::string_view(info.os_image),
        std::string_view(info.container_runtime_version), std::string_view(info.kubelet_version),
        std::string_view(info.kube_proxy_version), std::string_view(info.operating_system),
        std::string_view(info.architecture)}) {
    AppendBlobString(blob, s);
  }
  profile.node_info = Intern(blob, new_blobs);

  blob.clear();
  AppendBlobString(blob, std::to_string(node.capacity.size()));
  AppendPairsTo(blob, node.capacity);
  AppendPairsTo(blob, node.allocatable);
  profile.resources = Intern(blob, new_blobs);

  blob.clear();
  AppendBlobString(blob, node.ready_reason);
  AppendBlobString(blob, node.ready_message);
  for (const DeviceCondition& c : node.conditions) {
    AppendBlobString(blob, c.type);
    AppendBlobString(blob, ConditionStatusName(c.status));
    AppendBlobString(blob, c.reason);
    AppendBlobString(blob, c.message);
  }
  profile.conditions = Intern(blob, new_blobs);
  r.ready = static_cast<uint8_t>(node.ready);
  r.ready_transition_s = static_cast<uint32_t>(node.ready_transition_time);
  r.conditions_transition_s = static_cast<uint32_t>(node.conditions_transition_time);
  r.heartbeat_published_s = static_cast<uint32_t>(node.last_heartbeat_time);

  r.epoch = node.edge.epoch;
  r.published_sequence = static_cast<uint32_t>(node.edge.sequence);
  if (node.edge.connected) r.flags |= kConnected;
  profile.gateway = Intern(node.edge.gateway, new_blobs);
  r.profile = InternProfile(profile, new_blobs);

  // Identifiers unique per node: raw bytes when they have their usual form.
  bool upper = false;
  bool ids_in_extra = false;
  if (!info.machine_id.empty()) {
    if (ParseHex16(info.machine_id, false, r.machine_id, &upper) && !upper) {
      r.flags |= kMachineIdHex;
    } else {
      std::memset(r.machine_id, 0, sizeof(r.machine_id));
      ids_in_extra = true;
    }
  }
  if (!info.system_uuid.empty()) {
    if (ParseHex16(info.system_uuid, true, r.system_uuid, &upper)) {
      r.flags |= kSystemUuidBytes | (upper ? kSystemUuidUpper : 0);
    } else {
      std::memset(r.system_uuid, 0, sizeof(r.system_uuid));
      ids_in_extra = true;
    }
  }
  if (!info.boot_id.empty()) {
    if (ParseHex16(info.boot_id, true, r.boot_id, &upper) && !upper) {
      r.flags |= kBootIdBytes;
    } else {
      std::memset(r.boot_id, 0, sizeof(r.boot_id));
      ids_in_extra = true;
    }
  }

  // The usual address list: [InternalIP ipv4] or [InternalIP ipv4, Hostname].
  const auto& addresses = node.addresses;
  uint32_t ip = 0;
  if (!addresses.empty() && addresses.size() <= 2 && addresses[0].type == "InternalIP" &&
      ParseIpv4(addresses[0].address, &ip) && FormatIpv4String(ip) == addresses[0].address &&
      (addresses.size() == 1 ||
       (addresses[1].type == "Hostname" && addresses[1].address == node.name))) {
    r.flags |= kFastAddresses;
    r.ipv4 = ip;
    if (addresses.size() == 2) r.flags |= kHostnameAddress;
  }

  if (ids_in_extra || (!(r.flags & kFastAddresses) && !addresses.empty())) {
    blob.clear();
    AppendBlobString(blob, (r.flags & kMachineIdHex) ? "" : info.machine_id);
    AppendBlobString(blob, (r.flags & kSystemUuidBytes) ? "" : info.system_uuid);
    AppendBlobString(blob, (r.flags & kBootIdBytes) ? "" : info.boot_id);
    if (!(r.flags & kFastAddresses)) {
      for (const NodeAddress& a : addresses) {
        AppendBlobString(blob, a.type);
        AppendBlobString(blob, a.address);
      }
    }
    r.extra = Intern(blob, new_blobs);
  }
  return r;
}

StringPairs NodeCodec::DecodeLabels(const NodeRecord& r) const {
  StringPairs labels;
  ForEachLabel(r, [&](std::string_view key, std::string_view value) {
    labels.emplace_back(std::string(key), std::string(value));
    return true;
  });
  return labels;
}

std::string_view NodeCodec::Gateway(const NodeRecord& r) const {
  return pool_->Get(Profile(r).gateway);
}

bool NodeCodec::ReferencesAreValid(const NodeRecord& r) const {
  uint32_t size = pool_->size();
  if (r.labels >= size || r.profile >= size || r.extra >= size) return false;
  if (r.ready > static_cast<uint8_t>(ConditionStatus::kFalse)) return false;

  std::string_view ids = pool_->Get(r.labels);
  if (ids.size() % sizeof(uint32_t) != 0) return false;
  for (size_t at = 0; at < ids.size(); at += sizeof(uint32_t)) {
    uint32_t id;
    std::memcpy(&id, ids.data() + at, sizeof(id));
    if (id == 0 || id >= size) return false;
  }

  if (r.profile == BlobPool::kNone) return true;
  std::string_view blob = pool_->Get(r.profile);
  if (blob.size() != sizeof(NodeProfile)) return false;
  NodeProfile profile;
  std::memcpy(&profile, blob.data(), sizeof(profile));
  for (uint32_t id : {profile.node_info, profile.resources, profile.conditions, profile.annotations,
                      profile.taints, profile.gateway}) {
    if (id >= size) return false;
  }
  return true;
}

NodeProfile NodeCodec::Profile(const NodeRecord& r) const {
  NodeProfile profile;
  std::string_view blob = pool_->Get(r.profile);
  if (blob.size() == sizeof(NodeProfile)) std::memcpy(&profile, blob.data(), sizeof(profile));
  return profile;
}

uint32_t NodeCodec::InternProfile(const NodeProfile& profile,
                                  std::vector<uint32_t>* new_blobs) const {
  return Intern(std::string_view(reinterpret_cast<const char*>(&profile), sizeof(profile)),
                new_blobs);
}

void NodeCodec::SetReady(NodeRecord& r, ConditionStatus ready, std::string_view reason,
                         std::string_view message, int64_t now_s,
                         std::vector<uint32_t>* new_blobs) const {
  if (static_cast<ConditionStatus>(r.ready) != ready) {
    r.ready = static_cast<uint8_t>(ready);
    r.ready_transition_s = static_cast<uint32_t>(now_s);
  }

  // The Ready reason and message lead the conditions blob; re-encode it only
  // when they change.
  NodeProfile profile = Profile(r);
  std::string_view rest = pool_->Get(profile.conditions);
  std::string_view old_reason, old_message;
  ReadBlobString(rest, &old_reason);
  ReadBlobString(rest, &old_message);
  if (old_reason == reason && old_message == message) return;
  std::string blob;
  AppendBlobString(blob, reason);
  AppendBlobString(blob, message);
  blob.append(rest);
  profile.conditions = Intern(blob, new_blobs);
  r.profile = InternProfile(profile, new_blobs);
}

Node NodeCodec::Decode(const NodeRecord& r) const { return NodeView(*this, r).ToNode(); }

}  // namespace kole::storage
