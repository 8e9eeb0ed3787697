#include "edge/device_labels.h"

#include <gtest/gtest.h>

namespace kole::edge {
namespace {

TEST(DeviceLabels, DeviceOwnedKeys) {
  EXPECT_TRUE(IsDeviceOwnedLabel("kubernetes.io/hostname"));
  EXPECT_TRUE(IsDeviceOwnedLabel("kubernetes.io/arch"));
  EXPECT_TRUE(IsDeviceOwnedLabel("topology.kubernetes.io/zone"));
  EXPECT_TRUE(IsDeviceOwnedLabel("node.kubernetes.io/instance-type"));
  EXPECT_TRUE(IsDeviceOwnedLabel("edge.kole.io/site"));
  EXPECT_TRUE(IsDeviceOwnedLabel("rack.edge.kole.io/slot"));
  EXPECT_FALSE(IsDeviceOwnedLabel("customer"));
  EXPECT_FALSE(IsDeviceOwnedLabel("tier"));
  EXPECT_FALSE(IsDeviceOwnedLabel("notedge.kole.io/x"));
  EXPECT_FALSE(IsDeviceOwnedLabel("kubernetes.io/role"));
  EXPECT_FALSE(IsDeviceOwnedLabel("node-role.kubernetes.io/edge"));
}

TEST(DeviceLabels, DnsSubdomainRule) {
  EXPECT_TRUE(ValidateDnsSubdomain("fra-0042-rpi4-4g-3f9a1c2e").ok());
  EXPECT_TRUE(ValidateDnsSubdomain("a.b-c.d").ok());
  EXPECT_FALSE(ValidateDnsSubdomain("").ok());
  EXPECT_FALSE(ValidateDnsSubdomain("Upper").ok());
  EXPECT_FALSE(ValidateDnsSubdomain("-lead").ok());
  EXPECT_FALSE(ValidateDnsSubdomain("trail-").ok());
  EXPECT_FALSE(ValidateDnsSubdomain("a..b").ok());
  EXPECT_FALSE(ValidateDnsSubdomain("under_score").ok());
  EXPECT_FALSE(ValidateDnsSubdomain(std::string(254, 'a')).ok());
  EXPECT_FALSE(ValidateDnsSubdomain(std::string(64, 'a')).ok());
}

TEST(DeviceLabels, LabelKeyAndValueRules) {
  EXPECT_TRUE(ValidateLabelKey("edge.kole.io/site").ok());
  EXPECT_TRUE(ValidateLabelKey("simple").ok());
  EXPECT_FALSE(ValidateLabelKey("Bad_Prefix/x").ok());
  EXPECT_FALSE(ValidateLabelKey("edge.kole.io/").ok());
  EXPECT_TRUE(ValidateLabelValue("").ok());
  EXPECT_TRUE(ValidateLabelValue("A.b_c-1").ok());
  EXPECT_FALSE(ValidateLabelValue("-x").ok());
  EXPECT_FALSE(ValidateLabelValue(std::string(64, 'v')).ok());
}

}  // namespace
}  // namespace kole::edge
