// Fuzzes the store's recovery: NodeStore::Open on a data directory, held in
// the in-memory FaultInjectionFileSystem, whose snapshot, log segment and
// uid-key file hold fuzzed contents. Open must fail with an error or open;
// it must not crash, hang or allocate without bound.
//
// Checksums would stop random bytes at the first crc, so the harness frames
// what the fuzzer gives it: the snapshot payload is written with
// SnapshotWriter and the log records with EncodeWalRecord, and the fuzzer
// varies what recovery decodes after the checksums pass (the section and
// record payloads of storage/store_persistence.h). Input, read with
// FuzzedDataProvider: a flags byte (bit 0: truncate_at_corruption; bit 1:
// write a snapshot; bit 2: write a log segment; bit 3: fuzz the uid-key file;
// bit 4: end the segment with stray bytes; bit 5: start the snapshot with a
// well-formed header section), then the pieces in that order.
//
// After a successful Open the store must take a write and, reopened, hold
// it: recovery must leave the log in a state the writer can continue and the
// next recovery can replay. Reads of recovered nodes are not exercised:
// recovery trusts records whose checksums pass (they come from this build),
// so a record naming interned values that do not exist is out of scope here.

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "common/log.h"
#include "fuzz/fuzz_support.h"
#include "storage/clock.h"
#include "storage/fault_injection_file_system.h"
#include "storage/node_store.h"
#include "storage/snapshot_file.h"
#include "storage/store_persistence.h"
#include "storage/wal_format.h"

namespace kole::storage {
namespace {

constexpr char kDataDir[] = "/data";
constexpr char kWalDir[] = "/data/wal";
constexpr char kSnapshotDir[] = "/data/snapshots";
constexpr char kProbeName[] = "zz-recovery-probe";

// Snapshot section tags, as store_persistence.h describes the payload.
constexpr uint8_t kHeaderSection = 1;

[[noreturn]] void Fail(std::string_view what, std::string_view detail) {
  fuzz::Abort("store_recovery_fuzz", what, "", detail);
}

void MustOk(const absl::Status& status, std::string_view step) {
  if (!status.ok()) Fail(step, status.ToString());
}

template <typename T>
void Put(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

void WriteFile(FileSystem& fs, const std::string& path, std::string_view contents) {
  fuzz::WriteFile(fs, path, contents, Fail);
}

// Sections as LoadSnapshot reads them: u8 tag, u32 length, body. The length
// is usually the body's, sometimes the fuzzer's own, below 1 MiB.
std::string SnapshotPayload(FuzzedDataProvider& input, bool header) {
  std::string payload;
  if (header) {
    std::string body;
    Put<uint32_t>(body, 1);                                              // Payload format version.
    Put<uint64_t>(body, input.ConsumeIntegralInRange<uint64_t>(0, 20));  // Covered rv.
    Put<uint64_t>(body, input.ConsumeIntegralInRange<uint64_t>(0, 20));  // Reserved rv.
    Put<uint64_t>(body, input.ConsumeIntegralInRange<uint64_t>(0, 4));   // Replay from.
    Put<uint8_t>(payload, kHeaderSection);
    Put<uint32_t>(payload, static_cast<uint32_t>(body.size()));
    payload += body;
  }
  const int sections = input.ConsumeIntegralInRange(0, 12);
  for (int i = 0; i < sections; ++i) {
    uint8_t tag = input.ConsumeIntegralInRange<uint8_t>(0, 6);
    bool own_length = input.ConsumeBool();
    uint32_t length = own_length ? input.ConsumeIntegral<uint32_t>() : 0;
    std::string body = input.ConsumeRandomLengthString(400);
    Put<uint8_t>(payload, tag);
    Put<uint32_t>(payload, own_length ? length : static_cast<uint32_t>(body.size()));
    payload += body;
  }
  return payload;
}

// One segment whose header and record crcs are valid; the record types and
// payloads are the fuzzer's.
std::string LogSegment(FuzzedDataProvider& input, uint64_t first_sequence, bool stray_tail) {
  std::string segment;
  EncodeWalHeader(first_sequence, &segment);
  const int records = input.ConsumeIntegralInRange(0, 24);
  for (int i = 0; i < records; ++i) {
    uint8_t type = input.ConsumeIntegralInRange<uint8_t>(0, 7);
    EncodeWalRecord(type, input.ConsumeRandomLengthString(400), &segment);
  }
  if (stray_tail) segment += input.ConsumeRandomLengthString(32);
  return segment;
}

Node ProbeNode() {
  Node node;
  node.name = kProbeName;
  node.labels = {{"tier", "edge"}};
  node.capacity = {{"cpu", "1"}};
  return node;
}

StoreOptions Options(FileSystem* fs, Clock* clock, bool truncate) {
  StoreOptions options;
  options.data_dir = kDataDir;
  options.file_system = fs;
  options.clock = clock;
  options.background_maintenance = false;
  options.wal_truncate_at_corruption = truncate;
  return options;
}

void CheckRecovery(const uint8_t* data, size_t size) {
  FuzzedDataProvider input(data, size);
  const uint8_t flags = input.ConsumeIntegral<uint8_t>();
  const bool truncate = flags & 1;

  FaultInjectionFileSystem fs;
  ManualClock clock;
  MustOk(fs.CreateDirIfMissing(kDataDir), "create the data directory");
  MustOk(fs.CreateDirIfMissing(kWalDir), "create the log directory");
  MustOk(fs.CreateDirIfMissing(kSnapshotDir), "create the snapshot directory");

  WriteFile(fs, JoinPath(kDataDir, "uid-key"),
            (flags & 8) ? input.ConsumeRandomLengthString(40)
                        : std::string("0123456789abcdef0123456789abcdef\n"));
  if (flags & 2) {
    uint64_t covered = input.ConsumeIntegralInRange<uint64_t>(0, 4);
    std::string payload = SnapshotPayload(input, flags & 32);
    absl::StatusOr<std::unique_ptr<SnapshotWriter>> writer =
        SnapshotWriter::Create(&fs, kSnapshotDir, covered, {.compression_level = 1});
    MustOk(writer.status(), "SnapshotWriter::Create");
    MustOk((*writer)->Append(payload), "SnapshotWriter::Append");
    MustOk((*writer)->Finish(), "SnapshotWriter::Finish");
  }
  if (flags & 4) {
    uint64_t first = input.ConsumeIntegralInRange<uint64_t>(0, 3);
    WriteFile(fs, JoinPath(kWalDir, WalSegmentFileName(first)),
              LogSegment(input, first, flags & 16));
  }

  absl::StatusOr<std::unique_ptr<NodeStore>> store =
      NodeStore::Open(Options(&fs, &clock, truncate));
  if (!store.ok()) return;
  const StoreStats recovered = (*store)->Stats();
  // A write after recovery lands in the log and survives a restart.
  absl::StatusOr<RegisterResult> registered = (*store)->Register(ProbeNode());
  bool probe = registered.ok();
  if (probe) MustOk((*store)->WaitDurable(registered->durable_token), "the probe write");
  const uint64_t version = (*store)->resource_version();
  if (version < recovered.resource_version) {
    Fail("the resourceVersion went backwards",
         std::to_string(recovered.resource_version) + " -> " + std::to_string(version) + " (" +
             (probe ? "probe registered" : registered.status().ToString()) + ")");
  }
  store->reset();

  absl::StatusOr<std::unique_ptr<NodeStore>> reopened =
      NodeStore::Open(Options(&fs, &clock, /*truncate=*/false));
  if (!reopened.ok())
    Fail("a store that opened once does not reopen", reopened.status().ToString());
  if ((*reopened)->resource_version() < version) {
    Fail("the resourceVersion went backwards across a restart",
         std::to_string(version) + " -> " + std::to_string((*reopened)->resource_version()));
  }
  const StoreStats after = (*reopened)->Stats();
  if (after.nodes != recovered.nodes + (probe && registered->created ? 1 : 0)) {
    Fail("a restart changed the number of nodes", "");
  }
  if (probe) {
    absl::StatusOr<Node> node = (*reopened)->Get(kProbeName);
    if (!node.ok()) Fail("a durable write was lost across a restart", node.status().ToString());
    if (node->labels != ProbeNode().labels) Fail("a durable write reads back differently", "");
  }
}

}  // namespace
}  // namespace kole::storage

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  kole::fuzz::MuteLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kole::storage::CheckRecovery(data, size);
  return 0;
}
