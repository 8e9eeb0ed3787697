// Fuzzes snapshot reading (SnapshotReader, VerifySnapshot) on files held in
// the in-memory FaultInjectionFileSystem. Recovery verifies every snapshot it
// finds before trusting it, so whatever bytes sit under a snapshot's name
// must give OK or DataLoss, never a crash, a hang or a huge allocation.
//
// Random bytes almost never form a zstd frame under a valid header crc, so
// the input can instead be a payload that the harness writes with
// SnapshotWriter and then damages. Input, read with FuzzedDataProvider: a
// flags byte (bit 0: raw file bytes, else a written snapshot; bits 1-2 the
// damage to a written one: none, a flipped byte, a cut, appended bytes), the
// covered sequence, a read size, a damage position and mask, then the file or
// payload bytes.
//
// Properties: an undamaged snapshot verifies and reads back its payload; a
// damaged one that still verifies reads back the original payload (the crc
// must catch the rest); reading in chunks of any size reaches the same
// verdict and bytes as VerifySnapshot and ReadAll.

#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/log.h"
#include "fuzz/fuzz_support.h"
#include "storage/fault_injection_file_system.h"
#include "storage/snapshot_file.h"

namespace kole::storage {
namespace {

constexpr char kDir[] = "/snapshots";

[[noreturn]] void Fail(std::string_view what, std::string_view detail) {
  fuzz::Abort("snapshot_reader_fuzz", what, "", detail);
}

void MustOk(const absl::Status& status, std::string_view step) {
  if (!status.ok()) Fail(step, status.ToString());
}

void WriteFile(FileSystem& fs, const std::string& path, std::string_view contents) {
  fuzz::WriteFile(fs, path, contents, Fail);
}

// Reads the whole payload `chunk` bytes at a time, as LoadSnapshot does in
// section-sized pieces. nullopt when the reader reports corruption.
std::optional<std::string> ReadInChunks(FileSystem& fs, const std::string& path, size_t chunk) {
  absl::StatusOr<std::unique_ptr<SnapshotReader>> reader = SnapshotReader::Open(&fs, path);
  if (!reader.ok()) {
    if (!absl::IsDataLoss(reader.status())) Fail("Open failed oddly", reader.status().ToString());
    return std::nullopt;
  }
  std::string all;
  std::string piece;
  while (true) {
    absl::Status status = (*reader)->Read(chunk, &piece);
    if (!status.ok()) {
      if (!absl::IsDataLoss(status)) Fail("Read failed oddly", status.ToString());
      // Errors are sticky.
      if ((*reader)->Read(chunk, &piece).ok()) Fail("Read succeeds after an error", path);
      return std::nullopt;
    }
    if (piece.size() > chunk) Fail("Read returned more than asked", path);
    all += piece;
    if (piece.size() < chunk) break;
  }
  // After the end has been verified, further reads return nothing.
  if (!(*reader)->Read(chunk, &piece).ok() || !piece.empty()) Fail("Read after the end", path);
  return all;
}

void CheckSnapshot(const uint8_t* data, size_t size) {
  FuzzedDataProvider input(data, size);
  const uint8_t flags = input.ConsumeIntegral<uint8_t>();
  const uint64_t covered = input.ConsumeIntegralInRange<uint64_t>(0, 3);
  const size_t chunk = input.ConsumeIntegralInRange<size_t>(1, 300);
  const size_t damage_at = input.ConsumeIntegral<uint16_t>();
  const uint8_t mask = input.ConsumeIntegralInRange<uint8_t>(1, 255);
  const std::string bytes = input.ConsumeRemainingBytesAsString();

  FaultInjectionFileSystem fs;
  MustOk(fs.CreateDirIfMissing(kDir), "create the directory");
  const std::string path = JoinPath(kDir, SnapshotFileName(covered));

  const bool raw = flags & 1;
  const int damage = (flags >> 1) & 3;
  std::optional<std::string> payload;
  if (raw) {
    WriteFile(fs, path, bytes);
  } else {
    payload = bytes;
    absl::StatusOr<std::unique_ptr<SnapshotWriter>> writer =
        SnapshotWriter::Create(&fs, kDir, covered, {.compression_level = 1});
    MustOk(writer.status(), "SnapshotWriter::Create");
    MustOk((*writer)->Append(bytes), "SnapshotWriter::Append");
    MustOk((*writer)->Finish(), "SnapshotWriter::Finish");
    absl::StatusOr<std::string> file = fs.ReadFileToString(path);
    MustOk(file.status(), "read the written snapshot");
    std::string damaged = *file;
    if (damage == 1) {
      damaged[damage_at % damaged.size()] ^= static_cast<char>(mask);
    } else if (damage == 2) {
      damaged.resize(damage_at % damaged.size());
    } else if (damage == 3) {
      damaged.append(std::string(1 + damage_at % 64, static_cast<char>(mask)));
    }
    if (damaged != *file) WriteFile(fs, path, damaged);
  }

  absl::Status verified = VerifySnapshot(&fs, path);
  if (!verified.ok() && !absl::IsDataLoss(verified)) {
    Fail("VerifySnapshot failed with a code other than DataLoss", verified.ToString());
  }
  if (!raw && damage == 0 && !verified.ok()) {
    Fail("an intact snapshot does not verify", verified.ToString());
  }

  std::optional<std::string> read_all;
  if (absl::StatusOr<std::unique_ptr<SnapshotReader>> reader = SnapshotReader::Open(&fs, path);
      reader.ok()) {
    absl::StatusOr<std::string> all = (*reader)->ReadAll();
    if (all.ok()) read_all = *std::move(all);
  }
  if (read_all.has_value() != verified.ok()) Fail("ReadAll and VerifySnapshot disagree", "");
  if (payload.has_value() && read_all.has_value() && *read_all != *payload) {
    Fail("a snapshot verifies but reads back other bytes", "");
  }

  std::optional<std::string> chunked = ReadInChunks(fs, path, chunk);
  if (chunked != read_all) Fail("reading in chunks reaches another verdict or other bytes", "");
}

}  // namespace
}  // namespace kole::storage

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  kole::fuzz::MuteLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kole::storage::CheckSnapshot(data, size);
  return 0;
}
