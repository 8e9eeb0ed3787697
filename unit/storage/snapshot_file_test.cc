#include "storage/snapshot_file.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <random>
#include <string>

#include "storage/fault_injection_file_system.h"
#include "storage/file_system.h"

namespace kole::storage {
namespace {

constexpr char kDir[] = "/data/snapshots";

// `size` bytes that compress somewhat, like real node records: repeated
// words with random numbers in between.
std::string MakePayload(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out;
  out.reserve(size);
  const char* words[] = {"edge-node-", "Ready", "kubernetes.io/hostname", "arm64", "True"};
  while (out.size() < size) {
    out += words[rng() % 5];
    out += std::to_string(rng() % 1000000);
  }
  out.resize(size);
  return out;
}

absl::Status WriteSnapshot(FileSystem* fs, uint64_t covered, std::string_view payload) {
  absl::StatusOr<std::unique_ptr<SnapshotWriter>> writer =
      SnapshotWriter::Create(fs, kDir, covered);
  if (!writer.ok()) return writer.status();
  if (absl::Status s = (*writer)->Append(payload); !s.ok()) return s;
  return (*writer)->Finish();
}

absl::StatusOr<std::string> ReadSnapshot(FileSystem* fs, const std::string& path) {
  absl::StatusOr<std::unique_ptr<SnapshotReader>> reader = SnapshotReader::Open(fs, path);
  if (!reader.ok()) return reader.status();
  return (*reader)->ReadAll();
}

std::string SnapshotPath(uint64_t covered) { return JoinPath(kDir, SnapshotFileName(covered)); }

class SnapshotFileTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fs_.CreateDirIfMissing(kDir).ok()); }
  FaultInjectionFileSystem fs_;
};

TEST_F(SnapshotFileTest, MultiMegabytePayloadRoundTripsInUnevenPieces) {
  const std::string payload = MakePayload(12 << 20, 1);
  absl::StatusOr<std::unique_ptr<SnapshotWriter>> writer = SnapshotWriter::Create(&fs_, kDir, 1234);
  ASSERT_TRUE(writer.ok()) << writer.status();
  std::mt19937_64 rng(2);
  for (size_t pos = 0; pos < payload.size();) {
    size_t n = std::min<size_t>(payload.size() - pos, rng() % 300000);
    ASSERT_TRUE((*writer)->Append(std::string_view(payload).substr(pos, n)).ok());
    pos += n;
  }
  ASSERT_TRUE((*writer)->Finish().ok());
  EXPECT_LT(*fs_.GetFileSize(SnapshotPath(1234)), payload.size() / 2) << "not compressed";

  absl::StatusOr<std::unique_ptr<SnapshotReader>> reader =
      SnapshotReader::Open(&fs_, SnapshotPath(1234));
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->covered_sequence(), 1234u);
  std::string back, chunk;
  do {
    size_t n = rng() % 200000 + 1;
    ASSERT_TRUE((*reader)->Read(n, &chunk).ok());
    back += chunk;
    if (chunk.size() < n) break;
  } while (true);
  EXPECT_TRUE(back == payload) << "payload differs (" << back.size() << " bytes back)";
}

TEST_F(SnapshotFileTest, EmptyPayloadRoundTrips) {
  ASSERT_TRUE(WriteSnapshot(&fs_, 1, "").ok());
  absl::StatusOr<std::string> back = ReadSnapshot(&fs_, SnapshotPath(1));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, "");
}

TEST_F(SnapshotFileTest, RoundTripOnTheRealFileSystem) {
  char name[] = "/tmp/kole-snapshot-test-XXXXXX";
  std::string dir = mkdtemp(name);
  FileSystem* fs = DefaultFileSystem();
  const std::string payload = MakePayload(3 << 20, 3);
  absl::StatusOr<std::unique_ptr<SnapshotWriter>> writer = SnapshotWriter::Create(fs, dir, 9);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Append(payload).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  EXPECT_TRUE(VerifySnapshot(fs, (*writer)->path()).ok());
  absl::StatusOr<std::string> back = ReadSnapshot(fs, (*writer)->path());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == payload);
  std::filesystem::remove_all(dir);
}

TEST_F(SnapshotFileTest, TruncatedSnapshotIsDataLossAtOpen) {
  ASSERT_TRUE(WriteSnapshot(&fs_, 5, MakePayload(100000, 4)).ok());
  const uint64_t size = *fs_.GetFileSize(SnapshotPath(5));
  for (uint64_t cut : {uint64_t{0}, uint64_t{10}, uint64_t{24}, size / 2, size - 1}) {
    SCOPED_TRACE(::testing::Message() << "cut at " << cut);
    FaultInjectionFileSystem fs;
    ASSERT_TRUE(fs.CreateDirIfMissing(kDir).ok());
    std::string full = *fs_.ReadFileToString(SnapshotPath(5));
    auto file = fs.NewWritableFile(SnapshotPath(5));
    ASSERT_TRUE((*file)->Append(full.substr(0, cut)).ok());
    absl::StatusOr<std::unique_ptr<SnapshotReader>> reader =
        SnapshotReader::Open(&fs, SnapshotPath(5));
    ASSERT_TRUE(absl::IsDataLoss(reader.status())) << reader.status();
    EXPECT_NE(reader.status().message().find(SnapshotPath(5)), std::string::npos);
  }
}

TEST_F(SnapshotFileTest, CorruptPayloadByteIsDataLoss) {
  ASSERT_TRUE(WriteSnapshot(&fs_, 5, MakePayload(500000, 5)).ok());
  const uint64_t size = *fs_.GetFileSize(SnapshotPath(5));
  for (uint64_t offset : {uint64_t{30}, size / 2, size - 21}) {
    SCOPED_TRACE(::testing::Message() << "offset " << offset);
    ASSERT_TRUE(fs_.CorruptByte(SnapshotPath(5), offset).ok());
    EXPECT_TRUE(absl::IsDataLoss(VerifySnapshot(&fs_, SnapshotPath(5))));
    ASSERT_TRUE(fs_.CorruptByte(SnapshotPath(5), offset).ok());  // Undo.
    EXPECT_TRUE(VerifySnapshot(&fs_, SnapshotPath(5)).ok());
  }
}

TEST_F(SnapshotFileTest, TrailerChecksumMismatchIsReportedByTheReadThatReachesTheEnd) {
  const std::string payload = MakePayload(1000, 6);
  ASSERT_TRUE(WriteSnapshot(&fs_, 5, payload).ok());
  const uint64_t size = *fs_.GetFileSize(SnapshotPath(5));
  ASSERT_TRUE(fs_.CorruptByte(SnapshotPath(5), size - 20 + 8).ok());  // The crc.

  absl::StatusOr<std::unique_ptr<SnapshotReader>> reader =
      SnapshotReader::Open(&fs_, SnapshotPath(5));
  ASSERT_TRUE(reader.ok());
  std::string out;
  ASSERT_TRUE((*reader)->Read(500, &out).ok());
  absl::Status end = (*reader)->Read(1000, &out);
  ASSERT_TRUE(absl::IsDataLoss(end)) << end;
  EXPECT_NE(end.message().find("checksum"), std::string::npos);
  EXPECT_TRUE(out.empty()) << "no bytes from a snapshot that failed verification";
}

TEST_F(SnapshotFileTest, TrailerLengthMismatchIsDataLoss) {
  ASSERT_TRUE(WriteSnapshot(&fs_, 5, MakePayload(1000, 7)).ok());
  const uint64_t size = *fs_.GetFileSize(SnapshotPath(5));
  ASSERT_TRUE(fs_.CorruptByte(SnapshotPath(5), size - 20, 0x01).ok());
  absl::Status verified = VerifySnapshot(&fs_, SnapshotPath(5));
  ASSERT_TRUE(absl::IsDataLoss(verified));
  EXPECT_NE(verified.message().find("the trailer says"), std::string::npos) << verified;
}

TEST_F(SnapshotFileTest, CorruptHeaderIsDataLossAtOpen) {
  ASSERT_TRUE(WriteSnapshot(&fs_, 5, "payload").ok());
  ASSERT_TRUE(fs_.CorruptByte(SnapshotPath(5), 13).ok());
  EXPECT_TRUE(absl::IsDataLoss(SnapshotReader::Open(&fs_, SnapshotPath(5)).status()));
}

TEST_F(SnapshotFileTest, UnfinishedSnapshotIsNeverVisibleAfterACrash) {
  absl::StatusOr<std::unique_ptr<SnapshotWriter>> writer = SnapshotWriter::Create(&fs_, kDir, 8);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append(MakePayload(1 << 20, 8)).ok());
  fs_.SimulateCrash(CrashMode::kTearUnsynced);

  absl::StatusOr<std::vector<SnapshotInfo>> listed = ListSnapshots(&fs_, kDir);
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
}

TEST_F(SnapshotFileTest, RenameIsNotDurableWithoutDirSync) {
  // The steps of Finish() without its final directory sync: the crash takes
  // the rename back, and the .tmp left behind is not a snapshot.
  const std::string tmp = SnapshotPath(8) + ".tmp";
  auto file = fs_.NewWritableFile(tmp);
  ASSERT_TRUE((*file)->Append("whatever").ok());
  ASSERT_TRUE((*file)->Sync().ok());
  ASSERT_TRUE(fs_.SyncDir(kDir).ok());
  ASSERT_TRUE(fs_.RenameFile(tmp, SnapshotPath(8)).ok());
  fs_.SimulateCrash(CrashMode::kDropUnsynced);

  EXPECT_FALSE(fs_.FileExists(SnapshotPath(8)));
  EXPECT_TRUE(fs_.FileExists(tmp));
  EXPECT_TRUE(ListSnapshots(&fs_, kDir)->empty());
  EXPECT_FALSE(fs_.FileExists(tmp)) << "the next list removes the stray .tmp";
}

TEST_F(SnapshotFileTest, FinishedSnapshotSurvivesACrash) {
  const std::string payload = MakePayload(200000, 9);
  ASSERT_TRUE(WriteSnapshot(&fs_, 8, payload).ok());
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  absl::StatusOr<std::vector<SnapshotInfo>> listed = ListSnapshots(&fs_, kDir);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].covered_sequence, 8u);
  absl::StatusOr<std::string> back = ReadSnapshot(&fs_, (*listed)[0].path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == payload);
}

TEST_F(SnapshotFileTest, AbandonedWriterRemovesItsTmpFile) {
  {
    absl::StatusOr<std::unique_ptr<SnapshotWriter>> writer = SnapshotWriter::Create(&fs_, kDir, 3);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Append("partial").ok());
  }
  EXPECT_TRUE(fs_.ListDir(kDir)->empty());
}

TEST_F(SnapshotFileTest, DiskFullFailsAndLeavesNoSnapshot) {
  fs_.SetSpaceLimit(fs_.bytes_used() + 5000);
  absl::StatusOr<std::unique_ptr<SnapshotWriter>> writer = SnapshotWriter::Create(&fs_, kDir, 3);
  ASSERT_TRUE(writer.ok());
  absl::Status status = (*writer)->Append(MakePayload(1 << 20, 10));
  if (status.ok()) status = (*writer)->Finish();
  EXPECT_TRUE(absl::IsResourceExhausted(status)) << status;
  EXPECT_TRUE(absl::IsResourceExhausted((*writer)->Finish())) << "errors are sticky";
  writer->reset();
  EXPECT_TRUE(ListSnapshots(&fs_, kDir)->empty());
  EXPECT_TRUE(fs_.ListDir(kDir)->empty());
}

TEST_F(SnapshotFileTest, CreatingAnExistingSnapshotIsAlreadyExists) {
  ASSERT_TRUE(WriteSnapshot(&fs_, 5, "a").ok());
  EXPECT_TRUE(absl::IsAlreadyExists(SnapshotWriter::Create(&fs_, kDir, 5).status()));
  EXPECT_EQ(ReadSnapshot(&fs_, SnapshotPath(5)).value_or("<error>"), "a");
}

TEST_F(SnapshotFileTest, ListSnapshotsIsNewestFirst) {
  for (uint64_t covered : {3, 10, 7}) ASSERT_TRUE(WriteSnapshot(&fs_, covered, "x").ok());
  absl::StatusOr<std::vector<SnapshotInfo>> listed = ListSnapshots(&fs_, kDir);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_EQ((*listed)[0].covered_sequence, 10u);
  EXPECT_EQ((*listed)[1].covered_sequence, 7u);
  EXPECT_EQ((*listed)[2].covered_sequence, 3u);
  EXPECT_EQ((*listed)[0].path, SnapshotPath(10));
}

TEST_F(SnapshotFileTest, PruneKeepsTheNewestAndReturnsTheOldestKeptSequence) {
  for (uint64_t covered : {3, 10, 7, 20}) ASSERT_TRUE(WriteSnapshot(&fs_, covered, "x").ok());
  absl::StatusOr<uint64_t> oldest = PruneSnapshots(&fs_, kDir);
  ASSERT_TRUE(oldest.ok()) << oldest.status();
  EXPECT_EQ(*oldest, 10u);
  fs_.SimulateCrash(CrashMode::kDropUnsynced);  // Removal is durable.
  absl::StatusOr<std::vector<SnapshotInfo>> listed = ListSnapshots(&fs_, kDir);
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].covered_sequence, 20u);
  EXPECT_EQ((*listed)[1].covered_sequence, 10u);
}

TEST_F(SnapshotFileTest, PruneWithFewerSnapshotsThanKeptRemovesNothing) {
  EXPECT_EQ(*PruneSnapshots(&fs_, kDir, 2), 0u);
  ASSERT_TRUE(WriteSnapshot(&fs_, 4, "x").ok());
  EXPECT_EQ(*PruneSnapshots(&fs_, kDir, 2), 4u);
  EXPECT_TRUE(absl::IsInvalidArgument(PruneSnapshots(&fs_, kDir, 0).status()));
}

}  // namespace
}  // namespace kole::storage
