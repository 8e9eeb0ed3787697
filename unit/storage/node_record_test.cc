#include "storage/node_record.h"

#include <gtest/gtest.h>

#include <set>

namespace kole::storage {
namespace {

TEST(UidKey, VersionsRoundTripThroughUids) {
  UidKey key(0x1234567890abcdefull, 0xfedcba0987654321ull);
  for (uint64_t rv : {uint64_t{1}, uint64_t{2}, uint64_t{12345}, uint64_t{1} << 40, ~uint64_t{0}}) {
    Uid uid = key.FromVersion(rv);
    EXPECT_EQ(key.ToVersion(uid), rv) << uid.ToString();
  }
}

TEST(UidKey, UidsAreVersion4AndDistinct) {
  UidKey key = UidKey::Random();
  std::set<std::string> seen;
  for (uint64_t rv = 1; rv <= 10000; ++rv) {
    std::string text = key.FromVersion(rv).ToString();
    ASSERT_EQ(text[14], '4') << text;
    ASSERT_TRUE(text[19] == '8' || text[19] == '9' || text[19] == 'a' || text[19] == 'b') << text;
    ASSERT_TRUE(seen.insert(text).second) << text;
  }
}

TEST(UidKey, ForeignUidMapsToNoVersion) {
  UidKey key = UidKey::Random();
  EXPECT_EQ(key.ToVersion(Uid{}), 0u);
  EXPECT_EQ(key.ToVersion(UidKey::Random().FromVersion(7)), 0u);
}

TEST(NodeCodec, EncodeDecodeRoundTrip) {
  BlobPool pool;
  ByteArena names;
  NodeCodec codec(&pool, &names, UidKey::Random());
  Node node;
  node.name = "edge-1";
  node.uid = codec.uid_key().FromVersion(42);
  node.labels = {{"a", "1"}, {"kubernetes.io/hostname", "edge-1"}, {"z", "2"}};
  node.annotations = {{"note", "x"}};
  node.taints = {{"k", "v", "NoSchedule"}};
  node.capacity = {{"cpu", "2"}};
  node.allocatable = {{"cpu", "1"}};
  node.conditions = {{"DiskPressure", ConditionStatus::kFalse, "Ok", "fine"}};
  node.ready_reason = "r";
  node.ready_message = "m";
  node.edge.gateway = "gw-1";
  node.node_info.machine_id = "0123456789abcdef0123456789abcdef";
  std::vector<uint32_t> new_blobs;
  NodeRecord record = codec.Encode(node, &new_blobs);
  record.name = names.Append(node.name);
  EXPECT_FALSE(new_blobs.empty());
  EXPECT_EQ(record.created_rv, 42u);
  EXPECT_EQ(record.flags & kHostnameLabel, kHostnameLabel);

  Node decoded = codec.Decode(record);
  EXPECT_EQ(decoded, node);

  // Encoding the same node again creates nothing new.
  new_blobs.clear();
  codec.Encode(node, &new_blobs);
  EXPECT_TRUE(new_blobs.empty());
}

}  // namespace
}  // namespace kole::storage
