// kole-bench-store: the fleet store at fleet scale, measured as
// docs/benchmarks.md describes. Registers N seeded nodes durably, then
// measures resident bytes per node (with one watcher and one open paginated
// list), heartbeat apply rates
// (decoded, and JSON decoded + validated), serializing one full list as JSON
// (plain and gzipped), and snapshot write and restore times.
//
// Every figure is printed as `figure NAME VALUE UNIT` on a line of its own.

#include <malloc.h>
#include <rapidjson/document.h>
#include <unistd.h>
#include <zlib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "apiserver-ext/node_json.h"
#include "bench/bench_support.h"
#include "edge/fleet_generator.h"
#include "storage/node_store.h"
#include "storage/validation.h"

namespace kole::bench {
namespace {

// The heartbeat as a device sends it (docs/protocol.md defines the real
// schema with the bridge; this is its shape and size).
std::string HeartbeatJson(std::string_view name, uint32_t epoch, uint32_t sequence) {
  return fmt::format(R"({{"v":1,"node":"{}","epoch":{},"seq":{},"podRevision":"r-0"}})", name,
                     epoch, sequence);
}

// Decodes and validates a heartbeat payload the way the bridge must: schema
// version, types, and a node name that is a DNS subdomain. Returns false for
// anything malformed.
bool DecodeHeartbeat(char* payload, storage::Heartbeat* beat, rapidjson::Document& doc) {
  doc.ParseInsitu(payload);
  if (doc.HasParseError() || !doc.IsObject()) return false;
  auto v = doc.FindMember("v");
  auto node = doc.FindMember("node");
  auto epoch = doc.FindMember("epoch");
  auto seq = doc.FindMember("seq");
  if (v == doc.MemberEnd() || !v->value.IsUint() || v->value.GetUint() != 1) return false;
  if (node == doc.MemberEnd() || !node->value.IsString()) return false;
  if (epoch == doc.MemberEnd() || !epoch->value.IsUint()) return false;
  if (seq == doc.MemberEnd() || !seq->value.IsUint()) return false;
  std::string_view name(node->value.GetString(), node->value.GetStringLength());
  if (!storage::IsDns1123Subdomain(name).empty()) return false;
  beat->name = name;
  beat->epoch = epoch->value.GetUint();
  beat->sequence = seq->value.GetUint();
  return true;
}

int Run(int argc, char** argv) {
  CLI::App app{"kole-bench-store: the fleet store at fleet scale"};
  uint64_t nodes = 1'000'000;
  std::string data_dir;
  uint64_t seed = 1;
  int heartbeat_rounds = 3;
  app.add_option("--nodes", nodes, "Fleet size")
      ->check(CLI::Range(uint64_t{1}, uint64_t{10'000'000}));
  app.add_option("--data-dir", data_dir,
                 "Where the WAL and snapshots go (default: a fresh directory under /tmp, "
                 "removed at the end)");
  app.add_option("--seed", seed, "Fleet generator seed");
  app.add_option("--heartbeat-rounds", heartbeat_rounds, "Heartbeats per node in each rate test")
      ->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);

  bool own_dir = data_dir.empty();
  if (own_dir) {
    char pattern[] = "/tmp/kole-bench-store-XXXXXX";
    if (mkdtemp(pattern) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    data_dir = pattern;
  }

  edge::FleetOptions fleet_options;
  fleet_options.seed = seed;
  auto fleet = edge::FleetGenerator::Create(fleet_options);
  if (!fleet.ok()) {
    Note(std::string(fleet.status().message()));
    return 1;
  }
  Note(fleet->Describe());
  Figure("store.nodes", static_cast<double>(nodes), "nodes");

  // Durable registration: the bridge's pattern, a batch of registrations
  // then one group-committed wait before acknowledging them all.
  size_t rss_before = ResidentBytes();
  storage::StoreOptions options;
  options.data_dir = data_dir;
  options.snapshot_after_log_bytes = UINT64_MAX;  // Snapshots are timed on their own below.
  auto opened = storage::NodeStore::Open(options);
  if (!opened.ok()) {
    Note(std::string(opened.status().message()));
    return 1;
  }
  std::unique_ptr<storage::NodeStore> store = std::move(*opened);
  auto watcher = *store->Watch(0);

  constexpr size_t kBatch = 512;  // Small, so the benchmark's own buffers barely count.
  std::vector<storage::Node> batch;
  edge::NodeSpec spec;
  double register_seconds = 0;
  uint64_t last_token = 0;
  for (uint64_t first = 0; first < nodes; first += kBatch) {
    batch.clear();
    for (uint64_t i = first; i < std::min(nodes, first + kBatch); ++i) {
      fleet->FillNode(i, 0, &spec);
      batch.push_back(ToNode(spec));
    }
    auto start = Clock::now();
    for (const storage::Node& node : batch) {
      auto registered = store->Register(node);
      if (!registered.ok()) {
        Note(fmt::format("registration failed: {}", registered.status().ToString()));
        return 1;
      }
      last_token = registered->durable_token;
    }
    absl::Status durable = store->WaitDurable(last_token);
    register_seconds += Seconds(start);
    if (!durable.ok()) {
      Note(fmt::format("log sync failed: {}", durable.ToString()));
      return 1;
    }
    if ((first / kBatch) % 64 == 0) {
      Note(fmt::format("registered {} / {} nodes", first + batch.size(), nodes));
    }
  }
  batch.clear();
  batch.shrink_to_fit();
  Figure("store.register_per_second", nodes / register_seconds, "nodes/s");
  Figure("store.register_seconds", register_seconds, "s");

  // One open paginated list, as a client mid-way through `kubectl get`.
  storage::ListOptions page_options;
  page_options.limit = 500;
  auto first_page = store->List(page_options);
  if (!first_page.ok()) return 1;
  std::string open_continue = first_page->continue_token;
  first_page->nodes.clear();
  first_page->nodes.shrink_to_fit();

  size_t rss_after = ResidentBytes();
  storage::StoreStats stats = store->Stats();
  Figure("store.bytes_per_node", static_cast<double>(rss_after - rss_before) / nodes, "B");
  malloc_trim(0);
  Note(fmt::format("after malloc_trim: {:.1f} B/node",
                   static_cast<double>(ResidentBytes() - rss_before) / nodes));
  Figure("store.record_bytes_per_node", static_cast<double>(stats.record_bytes) / nodes, "B");
  Figure("store.name_bytes_per_node", static_cast<double>(stats.name_bytes) / nodes, "B");
  Figure("store.change_log_bytes_per_node", static_cast<double>(stats.change_log_bytes) / nodes,
         "B");
  Figure("store.interned_values", stats.blobs, "values");
  Figure("store.interned_bytes", stats.blob_bytes, "B");

  // Heartbeats, decoded: the bridge's batches applied on one thread.
  std::vector<std::string> names(nodes);
  for (uint64_t i = 0; i < nodes; ++i) {
    fleet->FillNode(i, 0, &spec);
    names[i] = spec.name;
  }
  std::vector<storage::Heartbeat> beats(kBatch);
  std::vector<storage::HeartbeatOutcome> outcomes(kBatch);
  uint64_t applied = 0;
  auto start = Clock::now();
  for (int round = 1; round <= heartbeat_rounds; ++round) {
    for (uint64_t first = 0; first < nodes; first += kBatch) {
      size_t count = std::min<uint64_t>(kBatch, nodes - first);
      for (size_t j = 0; j < count; ++j) {
        beats[j] = {names[first + j], 1, static_cast<uint32_t>(round)};
      }
      if (!store->ApplyHeartbeats({beats.data(), count}, {outcomes.data(), count}).ok()) return 1;
      for (size_t j = 0; j < count; ++j) {
        applied += outcomes[j] == storage::HeartbeatOutcome::kApplied ||
                   outcomes[j] == storage::HeartbeatOutcome::kPublished;
      }
    }
  }
  double decoded_seconds = Seconds(start);
  if (applied != nodes * heartbeat_rounds) {
    Note(fmt::format("only {} of {} heartbeats applied", applied, nodes * heartbeat_rounds));
    return 1;
  }
  Figure("store.heartbeats_decoded_per_second_per_core", applied / decoded_seconds, "heartbeats/s");

  // Heartbeats from JSON: decode + validate + apply; payloads are rendered
  // outside the timed part, as they would arrive from the broker.
  std::vector<std::string> payloads(kBatch);
  rapidjson::Document doc;
  double json_seconds = 0;
  applied = 0;
  for (int round = heartbeat_rounds + 1; round <= 2 * heartbeat_rounds; ++round) {
    for (uint64_t first = 0; first < nodes; first += kBatch) {
      size_t count = std::min<uint64_t>(kBatch, nodes - first);
      for (size_t j = 0; j < count; ++j) {
        payloads[j] = HeartbeatJson(names[first + j], 1, static_cast<uint32_t>(round));
      }
      auto timed = Clock::now();
      size_t valid = 0;
      for (size_t j = 0; j < count; ++j) {
        if (DecodeHeartbeat(payloads[j].data(), &beats[valid], doc)) ++valid;
      }
      if (!store->ApplyHeartbeats({beats.data(), valid}, {outcomes.data(), valid}).ok()) return 1;
      json_seconds += Seconds(timed);
      for (size_t j = 0; j < valid; ++j) {
        applied += outcomes[j] == storage::HeartbeatOutcome::kApplied ||
                   outcomes[j] == storage::HeartbeatOutcome::kPublished;
      }
    }
  }
  if (applied != nodes * heartbeat_rounds) {
    Note(fmt::format("only {} of {} JSON heartbeats applied", applied, nodes * heartbeat_rounds));
    return 1;
  }
  Figure("store.heartbeats_json_per_second_per_core", applied / json_seconds, "heartbeats/s");
  // Heartbeat ingest while a reader lists the whole fleet: how long the
  // longest batch waits for the lock the list takes in short holds.
  {
    std::atomic<bool> listing{true};
    std::thread lister([&] {
      storage::ListResult meta;
      size_t seen = 0;
      absl::Status listed = store->ListEach(
          {}, [&](const storage::Node&) { ++seen; }, &meta);
      if (!listed.ok() || seen != nodes) Note("the concurrent list failed");
      listing = false;
    });
    std::vector<double> batch_ms;
    uint32_t sequence = static_cast<uint32_t>(2 * heartbeat_rounds + 1);
    uint64_t during = 0;
    auto during_start = Clock::now();
    for (uint64_t first = 0; listing; first = (first + kBatch) % nodes) {
      if (first == 0) ++sequence;
      size_t count = std::min<uint64_t>(kBatch, nodes - first);
      for (size_t j = 0; j < count; ++j) beats[j] = {names[first + j], 1, sequence};
      auto timed = Clock::now();
      if (!store->ApplyHeartbeats({beats.data(), count}, {outcomes.data(), count}).ok()) return 1;
      batch_ms.push_back(Seconds(timed) * 1000);
      during += count;
    }
    double during_seconds = Seconds(during_start);
    lister.join();
    std::sort(batch_ms.begin(), batch_ms.end());
    if (!batch_ms.empty()) {
      Figure("store.heartbeats_during_full_list_per_second", during / during_seconds,
             "heartbeats/s");
      Figure("store.heartbeat_batch_p99_ms_during_full_list", batch_ms[batch_ms.size() * 99 / 100],
             "ms");
      Figure("store.heartbeat_batch_max_ms_during_full_list", batch_ms.back(), "ms");
    }
  }
  names.clear();
  names.shrink_to_fit();

  // One full list serialized as JSON, streamed item by item, plain and gzipped.
  for (bool gzip : {false, true}) {
    z_stream z{};
    if (gzip) deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    std::string chunk;
    std::string compressed(1 << 20, '\0');
    size_t body_bytes = 0;
    size_t items = 0;
    auto flush = [&](bool end) {
      if (!gzip) {
        body_bytes += chunk.size();
      } else {
        z.next_in = reinterpret_cast<Bytef*>(chunk.data());
        z.avail_in = static_cast<uInt>(chunk.size());
        do {
          z.next_out = reinterpret_cast<Bytef*>(compressed.data());
          z.avail_out = static_cast<uInt>(compressed.size());
          deflate(&z, end ? Z_FINISH : Z_NO_FLUSH);
          body_bytes += compressed.size() - z.avail_out;
        } while (z.avail_out == 0);
      }
      chunk.clear();
    };
    auto list_start = Clock::now();
    apiserver::AppendNodeListStart(chunk);
    storage::ListResult meta;
    absl::Status listed = store->ListEach(
        {},
        [&](const storage::Node& node) {
          if (items++ > 0) chunk += ',';
          apiserver::AppendNodeJson(node, chunk);
          if (chunk.size() >= (64 << 10)) flush(false);
        },
        &meta);
    if (!listed.ok()) return 1;
    apiserver::AppendNodeListEnd(meta.resource_version, meta.continue_token, chunk);
    flush(true);
    double list_seconds = Seconds(list_start);
    if (gzip) deflateEnd(&z);
    if (items != nodes) {
      Note(fmt::format("the list held {} of {} nodes", items, nodes));
      return 1;
    }
    Figure(gzip ? "store.list_json_gzip_seconds" : "store.list_json_seconds", list_seconds, "s");
    Figure(gzip ? "store.list_json_gzip_bytes" : "store.list_json_bytes",
           static_cast<double>(body_bytes), "B");
  }

  // The open list's next page still works: its snapshot was kept.
  page_options.continue_token = open_continue;
  if (!store->List(page_options).ok()) {
    Note("the open paginated list expired during the benchmark");
  }

  // Snapshot write, then restore (newest snapshot + log replay + indexes).
  start = Clock::now();
  absl::Status snapshot = store->Snapshot();
  if (!snapshot.ok()) {
    Note(fmt::format("snapshot failed: {}", snapshot.ToString()));
    return 1;
  }
  Figure("store.snapshot_write_seconds", Seconds(start), "s");
  uint64_t rv_before = store->resource_version();
  watcher.reset();
  store.reset();

  start = Clock::now();
  auto restored = storage::NodeStore::Open(options);
  double restore_seconds = Seconds(start);
  if (!restored.ok()) {
    Note(fmt::format("restore failed: {}", restored.status().ToString()));
    return 1;
  }
  storage::StoreStats restored_stats = (*restored)->Stats();
  if (restored_stats.nodes != nodes || (*restored)->resource_version() < rv_before) {
    Note(fmt::format("restore holds {} nodes at version {}; expected {} at or after {}",
                     restored_stats.nodes, (*restored)->resource_version(), nodes, rv_before));
    return 1;
  }
  Figure("store.restore_seconds", restore_seconds, "s");
  restored->reset();

  if (own_dir) std::filesystem::remove_all(data_dir);
  return 0;
}

}  // namespace
}  // namespace kole::bench

int main(int argc, char** argv) { return kole::bench::Run(argc, argv); }
