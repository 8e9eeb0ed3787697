// Fuzzes the write-ahead log reader (WalReader) and recovery's replay of a
// log directory (ReplayWal) on segment files of arbitrary bytes, held in the
// in-memory FaultInjectionFileSystem. A crash, a hang or an error other than
// DataLoss is a bug: this is what a torn write or a bad disk hands recovery.
//
// Random bytes rarely pass a crc32, so the input can ask the harness to make
// the envelope valid and leave the fuzzer the rest to vary. Input, read with
// FuzzedDataProvider: a flags byte (bit 0: write a valid segment header;
// bit 1: fix the crc of every record frame that fits; bit 2: then flip one
// byte; bit 3: replay with truncate_at_corruption; bits 4-5: one to three
// segments), the sequence replay starts from, then per segment its name's
// first sequence (as a step from the previous one) and its bytes.
//
// Properties: WalReader hands out consecutive sequences at increasing offsets
// and stays at kEnd or kBad once there; a replay that succeeds leaves a log
// that replays again cleanly, with the same records and nothing to repair; a
// replay that refuses leaves every file as it was, as its error promises.

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "common/log.h"
#include "fuzz/fuzz_support.h"
#include "storage/fault_injection_file_system.h"
#include "storage/wal_format.h"
#include "storage/wal_reader.h"

namespace kole::storage {
namespace {

constexpr char kDir[] = "/wal";

[[noreturn]] void Fail(std::string_view what, std::string_view detail) {
  fuzz::Abort("wal_reader_fuzz", what, "", detail);
}

void MustOk(const absl::Status& status, std::string_view step) {
  if (!status.ok()) Fail(step, status.ToString());
}

// Rewrites the crc of each complete record frame in `segment` after its
// header, so the records are valid unless their length or type is not.
void FixRecordChecksums(std::string& segment) {
  size_t offset = kWalHeaderSize;
  while (offset + kWalRecordFrameSize <= segment.size()) {
    uint32_t length = wal_internal::GetFixed32(segment.data() + offset);
    if (length > segment.size() - offset - kWalRecordFrameSize) break;
    uint8_t type = static_cast<uint8_t>(segment[offset + 8]);
    uint32_t crc = WalRecordChecksum(
        type, std::string_view(segment).substr(offset + kWalRecordFrameSize, length));
    for (int i = 0; i < 4; ++i) segment[offset + 4 + i] = static_cast<char>(crc >> (8 * i));
    offset += kWalRecordFrameSize + length;
  }
}

void WriteFile(FileSystem& fs, const std::string& path, std::string_view contents) {
  fuzz::WriteFile(fs, path, contents, Fail);
}

std::map<std::string, std::string> ReadDir(FileSystem& fs) {
  std::map<std::string, std::string> files;
  absl::StatusOr<std::vector<std::string>> names = fs.ListDir(kDir);
  MustOk(names.status(), "list the log directory");
  for (const std::string& name : *names) {
    absl::StatusOr<std::string> contents = fs.ReadFileToString(JoinPath(kDir, name));
    MustOk(contents.status(), "read a segment");
    files[name] = *contents;
  }
  return files;
}

// Reads one segment with WalReader and checks what it reports.
void CheckReader(FileSystem& fs, const std::string& path) {
  absl::StatusOr<std::unique_ptr<WalReader>> opened = WalReader::Open(&fs, path);
  MustOk(opened.status(), "WalReader::Open");
  WalReader& reader = **opened;

  WalReader::Record record;
  uint64_t last_offset = 0;
  // Every record takes at least a frame, so this bounds a reader that works.
  const uint64_t max_records = reader.file_size() / kWalRecordFrameSize + 1;
  absl::StatusOr<WalReader::Outcome> outcome;
  for (uint64_t n = 0;; ++n) {
    outcome = reader.Next(&record);
    MustOk(outcome.status(), "WalReader::Next");
    if (*outcome != WalReader::Outcome::kRecord) break;
    if (n >= max_records) Fail("WalReader returns more records than fit", path);
    if (!reader.header_ok()) Fail("a record from a segment with a bad header", path);
    if (record.sequence != reader.first_sequence() + n) Fail("sequences are not consecutive", path);
    if (record.type == 0) Fail("a record of type 0", path);
    if (n > 0 && record.offset <= last_offset) Fail("record offsets do not increase", path);
    if (record.offset + kWalRecordFrameSize + record.payload.size() != reader.good_offset()) {
      Fail("good_offset() is not the end of the last record", path);
    }
    last_offset = record.offset;
  }
  if (reader.good_offset() > reader.file_size()) Fail("good_offset() is past the end", path);
  if (*outcome == WalReader::Outcome::kEnd && reader.good_offset() != reader.file_size()) {
    Fail("kEnd before the end of the file", path);
  }
  if (*outcome == WalReader::Outcome::kBad) {
    if (reader.bad_reason().empty()) Fail("kBad without a reason", path);
    if (reader.header_ok() && reader.bad_offset() != reader.good_offset()) {
      Fail("bad bytes do not start where the good ones end", path);
    }
    absl::StatusOr<bool> follows = reader.ValidRecordFollows();
    MustOk(follows.status(), "ValidRecordFollows");
  }
  absl::StatusOr<WalReader::Outcome> again = reader.Next(&record);
  MustOk(again.status(), "WalReader::Next after the end");
  if (*again != *outcome) Fail("the outcome changes after kEnd or kBad", path);
}

using Replayed = std::vector<std::tuple<uint64_t, uint8_t, std::string>>;

absl::StatusOr<ReplayResult> Replay(FileSystem& fs, uint64_t from, bool truncate,
                                    Replayed* records) {
  ReplayOptions options;
  options.truncate_at_corruption = truncate;
  return ReplayWal(
      &fs, kDir, from,
      [&](uint64_t sequence, uint8_t type, std::string_view payload) {
        records->emplace_back(sequence, type, std::string(payload));
        return absl::OkStatus();
      },
      options);
}

void CheckLog(const uint8_t* data, size_t size) {
  FuzzedDataProvider input(data, size);
  const uint8_t flags = input.ConsumeIntegral<uint8_t>();
  const uint64_t from = input.ConsumeIntegralInRange<uint64_t>(0, 8);
  const int segments = std::max(1, (flags >> 4) & 3);

  FaultInjectionFileSystem fs;
  MustOk(fs.CreateDirIfMissing(kDir), "create the log directory");
  std::vector<std::string> paths;
  uint64_t first = input.ConsumeIntegralInRange<uint64_t>(0, 3);
  for (int i = 0; i < segments; ++i) {
    if (i > 0) first += input.ConsumeIntegralInRange<uint64_t>(0, 5);
    std::string bytes = i + 1 < segments ? input.ConsumeRandomLengthString(4096)
                                         : input.ConsumeRemainingBytesAsString();
    std::string segment;
    if (flags & 1) EncodeWalHeader(first, &segment);
    segment += bytes;
    if (flags & 2) FixRecordChecksums(segment);
    if ((flags & 4) && !segment.empty()) {
      size_t at = (bytes.size() * 31 + first) % segment.size();
      segment[at] = static_cast<char>(segment[at] ^ 0x20);
    }
    paths.push_back(JoinPath(kDir, WalSegmentFileName(first)));
    WriteFile(fs, paths.back(), segment);
  }
  // Segment names may repeat; ListWalSegments sees each file once.

  for (const std::string& path : paths) CheckReader(fs, path);

  const std::map<std::string, std::string> before = ReadDir(fs);
  Replayed records;
  const bool truncate = flags & 8;
  absl::StatusOr<ReplayResult> result = Replay(fs, from, truncate, &records);
  if (!result.ok()) {
    if (!absl::IsDataLoss(result.status())) {
      Fail("replay failed with a code other than DataLoss", result.status().ToString());
    }
    if (ReadDir(fs) != before) Fail("a refused replay changed the log", result.status().ToString());
    return;
  }

  // What the callback saw agrees with the result.
  if (result->records_replayed != records.size()) Fail("records_replayed is wrong", "");
  for (size_t i = 0; i < records.size(); ++i) {
    uint64_t sequence = std::get<0>(records[i]);
    if (sequence < from) Fail("a record before from_sequence was replayed", "");
    if (i > 0 && sequence != std::get<0>(records[i - 1]) + 1) {
      Fail("replayed sequences are not consecutive", "");
    }
  }
  if (result->next_sequence < std::max<uint64_t>(from, 1)) Fail("next_sequence is too small", "");
  if (!records.empty() && result->next_sequence != std::get<0>(records.back()) + 1) {
    Fail("next_sequence does not follow the last record", "");
  }

  // Whatever the replay repaired or cut, the log left behind is clean.
  Replayed again;
  absl::StatusOr<ReplayResult> second = Replay(fs, from, /*truncate=*/false, &again);
  if (!second.ok()) Fail("a repaired log does not replay", second.status().ToString());
  if (second->torn_tail_repaired || second->corruption_discarded) {
    Fail("a repaired log needs repair again", "");
  }
  if (again != records) Fail("a second replay yields other records", "");
  if (second->next_sequence != result->next_sequence) {
    Fail("a second replay continues at another sequence", "");
  }
}

}  // namespace
}  // namespace kole::storage

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  kole::fuzz::MuteLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kole::storage::CheckLog(data, size);
  return 0;
}
