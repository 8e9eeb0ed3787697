// kole-admin export (storage/tools/export.h): JSON lines that parse, hold
// every node and pod of the store, and say what the API says about them.

#include "storage/tools/export.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <sstream>

#include "apiserver-ext/node_json.h"
#include "apiserver-ext/pod_json.h"
#include "storage/node_store.h"
#include "storage/pod_store.h"
#include "unit/storage/data_dir_test_util.h"
#include "unit/testing/temp_dir.h"

namespace kole::admin {
namespace {

using kole::testing::ScopedTempDir;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(Export, WritesEveryNodeThenEveryPodAsTheApiServesThem) {
  ScopedTempDir tmp;
  {
    auto store = storage::NodeStore::Open(storage::DataDirOptions(tmp.path()));
    ASSERT_TRUE(store.ok()) << store.status();
    for (const char* name : {"edge-b", "edge-a", "edge-c"}) {
      storage::Node node;
      node.name = name;
      node.labels = {{"site", "s1"}};
      node.annotations = {{"note", "say \"hi\""}};
      ASSERT_TRUE((*store)->Create(node).ok());
    }
    ASSERT_TRUE((*store)->Snapshot().ok());
    ASSERT_TRUE((*store)->Delete("edge-c", 0, false).ok());
    auto pods = storage::PodStore::Open({.data_dir = tmp.path()});
    ASSERT_TRUE(pods.ok()) << pods.status();
    storage::Pod pod;
    pod.namespace_ = "ns1";
    pod.name = "p1";
    pod.node_name = "edge-a";
    pod.spec_json = R"({"nodeName":"edge-a","containers":[{"name":"c","image":"i"}]})";
    ASSERT_TRUE((*pods)->Create(pod).ok());
  }

  std::string output;
  auto counts = ExportDataDir(tmp.path(), [&](std::string_view chunk) {
    output += chunk;
    return absl::OkStatus();
  });
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->nodes, 2u);
  EXPECT_EQ(counts->pods, 1u);
  EXPECT_EQ(counts->bytes, output.size());

  std::vector<std::string> lines = Lines(output);
  ASSERT_EQ(lines.size(), 3u);
  auto store = storage::NodeStore::Open(
      {.data_dir = tmp.path(), .background_maintenance = false, .read_only = true});
  ASSERT_TRUE(store.ok()) << store.status();
  const char* names[] = {"edge-a", "edge-b"};
  for (int i = 0; i < 2; ++i) {
    rapidjson::Document doc;
    doc.Parse(lines[i].c_str());
    ASSERT_FALSE(doc.HasParseError()) << lines[i];
    EXPECT_STREQ(doc["kind"].GetString(), "Node");
    EXPECT_STREQ(doc["metadata"]["name"].GetString(), names[i]);
    EXPECT_STREQ(doc["metadata"]["annotations"]["note"].GetString(), "say \"hi\"");

    auto node = (*store)->Get(names[i]);
    ASSERT_TRUE(node.ok());
    EXPECT_EQ(doc["metadata"]["resourceVersion"].GetString(),
              std::to_string(node->resource_version));
    std::string served;
    apiserver::AppendNodeJson(*node, served);
    EXPECT_EQ(lines[i], served);
  }
  rapidjson::Document pod;
  pod.Parse(lines[2].c_str());
  ASSERT_FALSE(pod.HasParseError()) << lines[2];
  EXPECT_STREQ(pod["kind"].GetString(), "Pod");
  EXPECT_STREQ(pod["metadata"]["namespace"].GetString(), "ns1");
  EXPECT_STREQ(pod["spec"]["nodeName"].GetString(), "edge-a");
}

TEST(Export, RefusesADirectoryARunningServerHolds) {
  ScopedTempDir tmp;
  auto server = storage::NodeStore::Open(storage::DataDirOptions(tmp.path()));
  ASSERT_TRUE(server.ok()) << server.status();
  auto counts = ExportDataDir(tmp.path(), [](std::string_view) { return absl::OkStatus(); });
  EXPECT_TRUE(absl::IsFailedPrecondition(counts.status())) << counts.status();
  EXPECT_NE(counts.status().message().find("kole-admin backup"), std::string::npos);
}

TEST(Export, StopsAtAWriteError) {
  ScopedTempDir tmp;
  {
    auto store = storage::NodeStore::Open(storage::DataDirOptions(tmp.path()));
    ASSERT_TRUE(store.ok()) << store.status();
    storage::Node node;
    node.name = "edge-a";
    ASSERT_TRUE((*store)->Create(node).ok());
  }
  auto counts = ExportDataDir(tmp.path(),
                              [](std::string_view) { return absl::DataLossError("pipe closed"); });
  EXPECT_TRUE(absl::IsDataLoss(counts.status())) << counts.status();
}

}  // namespace
}  // namespace kole::admin
