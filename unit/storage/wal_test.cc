#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "storage/fault_injection_file_system.h"
#include "storage/file_system.h"
#include "storage/wal_format.h"
#include "storage/wal_reader.h"
#include "storage/wal_writer.h"

namespace kole::storage {
namespace {

constexpr char kDir[] = "/data/wal";
constexpr uint8_t kType = 7;

// A deterministic payload of varying length (1..200 bytes) for record n.
std::string Payload(uint64_t n) {
  std::string out((n * 37) % 200 + 1, '\0');
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>((n * 131 + i * 7) & 0xff);
  return out;
}

std::string SegmentPath(uint64_t first) { return JoinPath(kDir, WalSegmentFileName(first)); }

struct Replayed {
  absl::Status status;
  ReplayResult result;
  std::map<uint64_t, std::string> records;  // sequence -> payload
};

Replayed Replay(FileSystem* fs, uint64_t from = 1, ReplayOptions options = {}) {
  Replayed out;
  uint64_t previous = 0;
  absl::StatusOr<ReplayResult> result = ReplayWal(
      fs, kDir, from,
      [&](uint64_t seq, uint8_t type, std::string_view payload) {
        EXPECT_EQ(type, kType);
        EXPECT_GT(seq, previous) << "replay out of order";
        previous = seq;
        out.records[seq] = std::string(payload);
        return absl::OkStatus();
      },
      options);
  out.status = result.status();
  if (result.ok()) out.result = *result;
  return out;
}

// Opens a writer at `next` and appends `count` records with Payload(seq).
std::unique_ptr<WalWriter> WriteRecords(FileSystem* fs, uint64_t next, int count,
                                        WalWriterOptions options = {}) {
  absl::StatusOr<std::unique_ptr<WalWriter>> writer = WalWriter::Open(fs, kDir, next, options);
  EXPECT_TRUE(writer.ok()) << writer.status();
  if (!writer.ok()) return nullptr;
  for (int i = 0; i < count; ++i) {
    uint64_t expected = (*writer)->last_sequence() + 1;
    absl::StatusOr<uint64_t> seq = (*writer)->Append(kType, Payload(expected));
    EXPECT_TRUE(seq.ok()) << seq.status();
    EXPECT_EQ(*seq, expected);
  }
  EXPECT_TRUE((*writer)->Sync().ok());
  return std::move(*writer);
}

// Offset of record `index` (0-based) in a segment starting at `first`.
uint64_t RecordOffset(uint64_t first, uint64_t index) {
  uint64_t offset = kWalHeaderSize;
  for (uint64_t i = 0; i < index; ++i) offset += kWalRecordFrameSize + Payload(first + i).size();
  return offset;
}

void WriteRawFile(FaultInjectionFileSystem* fs, const std::string& path, std::string_view data) {
  absl::StatusOr<std::unique_ptr<WritableFile>> file = fs->NewWritableFile(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_TRUE((*file)->Append(data).ok());
  ASSERT_TRUE((*file)->Sync().ok());
  ASSERT_TRUE(fs->SyncDir(kDir).ok());
}

// Routes klog output into a temporary file for the lifetime of the object.
class LogCapture {
 public:
  LogCapture() {
    char name[] = "/tmp/kole-wal-test-log-XXXXXX";
    fd_ = mkstemp(name);
    path_ = name;
    log::SetOutputFdForTest(fd_);
  }
  ~LogCapture() {
    log::SetOutputFdForTest(2);
    close(fd_);
    unlink(path_.c_str());
  }
  std::string Contents() { return *DefaultFileSystem()->ReadFileToString(path_); }

 private:
  int fd_;
  std::string path_;
};

size_t CountOccurrences(std::string_view text, std::string_view needle) {
  size_t count = 0;
  for (size_t pos = text.find(needle); pos != std::string_view::npos;
       pos = text.find(needle, pos + 1)) {
    ++count;
  }
  return count;
}

class WalTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fs_.CreateDirIfMissing(kDir).ok()); }
  FaultInjectionFileSystem fs_;
};

TEST_F(WalTest, AppendAssignsConsecutiveSequences) {
  std::unique_ptr<WalWriter> writer = WriteRecords(&fs_, 1, 0);
  EXPECT_EQ(*writer->Append(kType, "a"), 1u);
  EXPECT_EQ(*writer->Append(kType, "b"), 2u);
  EXPECT_EQ(*writer->Append(kType, ""), 3u);
  EXPECT_EQ(writer->last_sequence(), 3u);
  EXPECT_EQ(writer->durable_sequence(), 0u);
  ASSERT_TRUE(writer->WaitDurable(2).ok());
  EXPECT_EQ(writer->durable_sequence(), 3u) << "one flush takes everything buffered";
}

TEST_F(WalTest, AppendRejectsTypeZeroAndOversizedPayloads) {
  std::unique_ptr<WalWriter> writer = WriteRecords(&fs_, 1, 0);
  EXPECT_TRUE(absl::IsInvalidArgument(writer->Append(0, "x").status()));
  std::string huge(kWalMaxPayloadSize + 1, 'x');
  EXPECT_TRUE(absl::IsInvalidArgument(writer->Append(kType, huge).status()));
  EXPECT_TRUE(writer->status().ok()) << "argument errors are not sticky";
}

TEST_F(WalTest, WaitDurableOnSequenceNeverAppendedIsInvalid) {
  std::unique_ptr<WalWriter> writer = WriteRecords(&fs_, 1, 2);
  EXPECT_TRUE(absl::IsInvalidArgument(writer->WaitDurable(3)));
}

TEST_F(WalTest, AppendReplayRoundTrip) {
  WriteRecords(&fs_, 1, 100);
  Replayed replayed = Replay(&fs_);
  ASSERT_TRUE(replayed.status.ok()) << replayed.status;
  ASSERT_EQ(replayed.records.size(), 100u);
  for (uint64_t seq = 1; seq <= 100; ++seq) EXPECT_EQ(replayed.records[seq], Payload(seq));
  EXPECT_EQ(replayed.result.last_sequence, 100u);
  EXPECT_EQ(replayed.result.next_sequence, 101u);
  EXPECT_EQ(replayed.result.records_replayed, 100u);
  EXPECT_FALSE(replayed.result.torn_tail_repaired);
}

TEST_F(WalTest, EmptyDirectoryReplaysNothingAndStartsAtFromSequence) {
  Replayed replayed = Replay(&fs_, 42);
  ASSERT_TRUE(replayed.status.ok()) << replayed.status;
  EXPECT_TRUE(replayed.records.empty());
  EXPECT_EQ(replayed.result.last_sequence, 0u);
  EXPECT_EQ(replayed.result.next_sequence, 42u);
}

TEST_F(WalTest, RecordsBeforeFromSequenceAreSkipped) {
  WriteRecords(&fs_, 1, 20);
  Replayed replayed = Replay(&fs_, 15);
  ASSERT_TRUE(replayed.status.ok()) << replayed.status;
  ASSERT_EQ(replayed.records.size(), 6u);
  EXPECT_EQ(replayed.records.begin()->first, 15u);
  EXPECT_EQ(replayed.result.last_sequence, 20u);
  EXPECT_EQ(replayed.result.next_sequence, 21u);
}

TEST_F(WalTest, SegmentRotatesWhenSizeLimitIsPassed) {
  WalWriterOptions options;
  options.segment_size_limit = 1024;
  WriteRecords(&fs_, 1, 200, options);

  absl::StatusOr<std::vector<WalSegment>> segments = ListWalSegments(&fs_, kDir);
  ASSERT_TRUE(segments.ok());
  ASSERT_GT(segments->size(), 5u);
  for (const WalSegment& segment : *segments) {
    EXPECT_LE(*fs_.GetFileSize(segment.path), 1024u) << segment.path;
  }
  Replayed replayed = Replay(&fs_);
  ASSERT_TRUE(replayed.status.ok()) << replayed.status;
  ASSERT_EQ(replayed.records.size(), 200u);
  for (uint64_t seq = 1; seq <= 200; ++seq) EXPECT_EQ(replayed.records[seq], Payload(seq));
}

TEST_F(WalTest, SegmentFileIsNamedForItsFirstSequence) {
  WriteRecords(&fs_, 12345, 1);
  EXPECT_TRUE(fs_.FileExists("/data/wal/wal-00000000000000012345.log"));
  EXPECT_EQ(ParseWalSegmentFileName("wal-00000000000000012345.log"), 12345u);
  EXPECT_FALSE(ParseWalSegmentFileName("wal-12345.log").has_value());
}

TEST_F(WalTest, ReopenedWriterContinuesInANewSegment) {
  WriteRecords(&fs_, 1, 10);
  Replayed first = Replay(&fs_);
  ASSERT_TRUE(first.status.ok());
  WriteRecords(&fs_, first.result.next_sequence, 10);

  EXPECT_TRUE(fs_.FileExists(SegmentPath(11)));
  Replayed replayed = Replay(&fs_);
  ASSERT_TRUE(replayed.status.ok()) << replayed.status;
  EXPECT_EQ(replayed.records.size(), 20u);
  EXPECT_EQ(replayed.result.next_sequence, 21u);
}

TEST_F(WalTest, OpenRefusesToWriteBehindExistingRecords) {
  WriteRecords(&fs_, 1, 10);
  absl::StatusOr<std::unique_ptr<WalWriter>> writer = WalWriter::Open(&fs_, kDir, 1);
  EXPECT_TRUE(absl::IsFailedPrecondition(writer.status())) << writer.status();
}

TEST_F(WalTest, OpenReusesAnEmptySegmentWithItsName) {
  WriteRecords(&fs_, 5, 0);
  std::unique_ptr<WalWriter> writer = WriteRecords(&fs_, 5, 3);
  ASSERT_NE(writer, nullptr);
  EXPECT_EQ(Replay(&fs_, 5).records.size(), 3u);
}

TEST_F(WalTest, GroupCommitSharesSyncsAcrossThreads) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 40;
  std::unique_ptr<WalWriter> writer = WriteRecords(&fs_, 1, 0);
  // A slow disk: while one leader syncs, the others queue up behind it.
  fs_.SetSyncDelay(absl::Milliseconds(2));
  uint64_t syncs_before = fs_.sync_count();

  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        absl::StatusOr<uint64_t> seq = writer->Append(kType, Payload(t * 1000 + i));
        if (!seq.ok() || !writer->WaitDurable(*seq).ok()) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  ASSERT_EQ(failures.load(), 0);
  uint64_t syncs = fs_.sync_count() - syncs_before;
  EXPECT_EQ(writer->durable_sequence(), uint64_t{kThreads * kPerThread});
  EXPECT_LE(syncs, uint64_t{kThreads * kPerThread / 2}) << "waiters did not share fsyncs";
  fs_.SetSyncDelay(absl::ZeroDuration());
  EXPECT_EQ(Replay(&fs_).records.size(), size_t{kThreads * kPerThread});
}

TEST_F(WalTest, AppendFlushesWhenTheBufferLimitIsReached) {
  WalWriterOptions options;
  options.max_buffered_bytes = 1000;
  std::unique_ptr<WalWriter> writer = WriteRecords(&fs_, 1, 0, options);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(writer->Append(kType, std::string(100, 'x')).ok());
  EXPECT_GE(writer->durable_sequence(), 40u);
}

TEST_F(WalTest, RecordsSpanningRotationsInOneFlushAreAllDurable) {
  // One group commit writes into several segments; each older one must be
  // synced before the next is created, or a crash leaves a hole in the log.
  WalWriterOptions options;
  options.segment_size_limit = 512;
  std::unique_ptr<WalWriter> writer = WriteRecords(&fs_, 1, 0, options);
  uint64_t last = 0;
  for (uint64_t i = 1; i <= 30; ++i) last = *writer->Append(kType, Payload(i));
  ASSERT_TRUE(writer->WaitDurable(last).ok());
  ASSERT_GT(ListWalSegments(&fs_, kDir)->size(), 3u);
  fs_.SimulateCrash(CrashMode::kDropUnsynced);

  Replayed replayed = Replay(&fs_);
  ASSERT_TRUE(replayed.status.ok()) << replayed.status;
  EXPECT_EQ(replayed.records.size(), 30u);
}

TEST_F(WalTest, RotateStartsADurableSegmentAtTheNextSequence) {
  std::unique_ptr<WalWriter> writer = WriteRecords(&fs_, 1, 5);
  absl::StatusOr<uint64_t> first = writer->Rotate();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, 6u);
  EXPECT_EQ(writer->durable_sequence(), 5u);
  EXPECT_EQ(*writer->Append(kType, Payload(6)), 6u);
  ASSERT_TRUE(writer->Sync().ok());

  // The new segment's name survives a power cut: Rotate synced the directory.
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  EXPECT_TRUE(fs_.FileExists(SegmentPath(6)));
  Replayed replayed = Replay(&fs_);
  ASSERT_TRUE(replayed.status.ok()) << replayed.status;
  EXPECT_EQ(replayed.records.size(), 6u);
}

TEST_F(WalTest, RotateOfAnEmptySegmentKeepsIt) {
  std::unique_ptr<WalWriter> writer = WriteRecords(&fs_, 1, 3);
  ASSERT_EQ(*writer->Rotate(), 4u);
  EXPECT_EQ(*writer->Rotate(), 4u);
  EXPECT_EQ(ListWalSegments(&fs_, kDir)->size(), 2u);
}

TEST_F(WalTest, RemoveSegmentsBeforeDeletesOnlyWholeOlderSegments) {
  std::unique_ptr<WalWriter> writer = WriteRecords(&fs_, 1, 10);  // 1..10
  ASSERT_EQ(*writer->Rotate(), 11u);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(writer->Append(kType, Payload(11 + i)).ok());
  ASSERT_EQ(*writer->Rotate(), 21u);  // 11..20
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(writer->Append(kType, Payload(21 + i)).ok());
  ASSERT_TRUE(writer->Sync().ok());

  // Sequence 15 lies in the second segment: only the first one goes.
  ASSERT_TRUE(writer->RemoveSegmentsBefore(15).ok());
  EXPECT_FALSE(fs_.FileExists(SegmentPath(1)));
  EXPECT_TRUE(fs_.FileExists(SegmentPath(11)));
  // Everything before 21 may go, but never the segment being written.
  ASSERT_TRUE(writer->RemoveSegmentsBefore(1000).ok());
  EXPECT_FALSE(fs_.FileExists(SegmentPath(11)));
  EXPECT_TRUE(fs_.FileExists(SegmentPath(21)));

  Replayed replayed = Replay(&fs_, 21);
  ASSERT_TRUE(replayed.status.ok()) << replayed.status;
  EXPECT_EQ(replayed.records.size(), 5u);
}

TEST_F(WalTest, RemovalIsDurable) {
  std::unique_ptr<WalWriter> writer = WriteRecords(&fs_, 1, 3);
  ASSERT_TRUE(writer->Rotate().ok());
  ASSERT_TRUE(writer->RemoveSegmentsBefore(4).ok());
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  EXPECT_FALSE(fs_.FileExists(SegmentPath(1)));
}

TEST_F(WalTest, TornTailAtEveryByteOffsetOfTheLastRecordIsTruncated) {
  WriteRecords(&fs_, 1, 5);
  std::string full = *fs_.ReadFileToString(SegmentPath(1));
  const uint64_t last_start = RecordOffset(1, 4);
  ASSERT_EQ(full.size(), RecordOffset(1, 5));

  for (uint64_t cut = last_start; cut < full.size(); ++cut) {
    SCOPED_TRACE(::testing::Message() << "cut at " << cut);
    FaultInjectionFileSystem fs;
    ASSERT_TRUE(fs.CreateDirIfMissing(kDir).ok());
    WriteRawFile(&fs, SegmentPath(1), std::string_view(full).substr(0, cut));

    Replayed replayed = Replay(&fs);
    ASSERT_TRUE(replayed.status.ok()) << replayed.status;
    EXPECT_EQ(replayed.records.size(), 4u);
    EXPECT_EQ(replayed.result.next_sequence, 5u);
    EXPECT_EQ(replayed.result.torn_tail_repaired, cut != last_start);
    EXPECT_EQ(replayed.result.bytes_discarded, cut - last_start);
    EXPECT_EQ(*fs.GetFileSize(SegmentPath(1)), last_start);

    // The repaired log takes new records and replays cleanly.
    WriteRecords(&fs, replayed.result.next_sequence, 2);
    Replayed again = Replay(&fs);
    ASSERT_TRUE(again.status.ok()) << again.status;
    EXPECT_EQ(again.records.size(), 6u);
    EXPECT_FALSE(again.result.torn_tail_repaired);
  }
}

TEST_F(WalTest, TornTailIsTruncatedAndLoggedOnce) {
  WriteRecords(&fs_, 1, 5);
  uint64_t size = *fs_.GetFileSize(SegmentPath(1));
  ASSERT_TRUE(fs_.TruncateFile(SegmentPath(1), size - 3).ok());

  LogCapture capture;
  Replayed replayed = Replay(&fs_);
  std::string logs = capture.Contents();
  ASSERT_TRUE(replayed.status.ok()) << replayed.status;
  EXPECT_EQ(CountOccurrences(logs, "Truncated torn WAL tail"), 1u) << logs;
  EXPECT_NE(logs.find(SegmentPath(1)), std::string::npos) << logs;
  EXPECT_NE(logs.find("offset=" + std::to_string(RecordOffset(1, 4))), std::string::npos) << logs;
  EXPECT_NE(logs.find("bytesDropped=" + std::to_string(size - 3 - RecordOffset(1, 4))),
            std::string::npos)
      << logs;
}

TEST_F(WalTest, ChecksumFailingLastRecordIsATornTail) {
  WriteRecords(&fs_, 1, 5);
  ASSERT_TRUE(fs_.CorruptByte(SegmentPath(1), RecordOffset(1, 4) + kWalRecordFrameSize).ok());
  Replayed replayed = Replay(&fs_);
  ASSERT_TRUE(replayed.status.ok()) << replayed.status;
  EXPECT_EQ(replayed.records.size(), 4u);
  EXPECT_TRUE(replayed.result.torn_tail_repaired);
}

TEST_F(WalTest, TornHeaderOfTheNewestSegmentIsRemoved) {
  WriteRecords(&fs_, 1, 3);
  std::string header;
  EncodeWalHeader(4, &header);
  WriteRawFile(&fs_, SegmentPath(4), header.substr(0, 10));

  Replayed replayed = Replay(&fs_);
  ASSERT_TRUE(replayed.status.ok()) << replayed.status;
  EXPECT_EQ(replayed.records.size(), 3u);
  EXPECT_EQ(replayed.result.next_sequence, 4u);
  EXPECT_FALSE(fs_.FileExists(SegmentPath(4)));
}

TEST_F(WalTest, CorruptionInTheMiddleRefusesWithDataLoss) {
  WriteRecords(&fs_, 1, 10);
  const uint64_t offset = RecordOffset(1, 2);  // Record 3.
  ASSERT_TRUE(fs_.CorruptByte(SegmentPath(1), offset + kWalRecordFrameSize).ok());
  uint64_t size = *fs_.GetFileSize(SegmentPath(1));

  Replayed replayed = Replay(&fs_);
  ASSERT_TRUE(absl::IsDataLoss(replayed.status)) << replayed.status;
  std::string message(replayed.status.message());
  EXPECT_NE(message.find(SegmentPath(1)), std::string::npos) << message;
  EXPECT_NE(message.find("offset " + std::to_string(offset)), std::string::npos) << message;
  EXPECT_NE(message.find("--wal-truncate-at-corruption"), std::string::npos) << message;
  EXPECT_EQ(*fs_.GetFileSize(SegmentPath(1)), size) << "a refused log must stay untouched";
}

TEST_F(WalTest, TruncateAtCorruptionKeepsTheRecordsBeforeIt) {
  WriteRecords(&fs_, 1, 10);
  ASSERT_TRUE(fs_.CorruptByte(SegmentPath(1), RecordOffset(1, 2) + kWalRecordFrameSize).ok());

  ReplayOptions options;
  options.truncate_at_corruption = true;
  LogCapture capture;
  Replayed replayed = Replay(&fs_, 1, options);
  ASSERT_TRUE(replayed.status.ok()) << replayed.status;
  EXPECT_EQ(replayed.records.size(), 2u);
  EXPECT_EQ(replayed.result.next_sequence, 3u);
  EXPECT_TRUE(replayed.result.corruption_discarded);
  EXPECT_EQ(*fs_.GetFileSize(SegmentPath(1)), RecordOffset(1, 2));
  EXPECT_NE(capture.Contents().find("firstLostSequence=3"), std::string::npos);

  // The cut log is now clean, and a writer can continue it.
  WriteRecords(&fs_, 3, 1);
  Replayed again = Replay(&fs_);
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_EQ(again.records.size(), 3u);
}

TEST_F(WalTest, DamageInANonFinalSegmentRefuses) {
  std::unique_ptr<WalWriter> writer = WriteRecords(&fs_, 1, 4);
  ASSERT_EQ(*writer->Rotate(), 5u);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(writer->Append(kType, Payload(5 + i)).ok());
  ASSERT_TRUE(writer->Close().ok());
  // The last record of the older segment: nothing follows it in that file,
  // yet it is not a torn tail because a newer segment exists.
  ASSERT_TRUE(fs_.CorruptByte(SegmentPath(1), RecordOffset(1, 3) + kWalRecordFrameSize).ok());

  Replayed refused = Replay(&fs_);
  EXPECT_TRUE(absl::IsDataLoss(refused.status)) << refused.status;

  ReplayOptions options;
  options.truncate_at_corruption = true;
  Replayed cut = Replay(&fs_, 1, options);
  ASSERT_TRUE(cut.status.ok()) << cut.status;
  EXPECT_EQ(cut.records.size(), 3u);
  EXPECT_EQ(cut.result.next_sequence, 4u);
  EXPECT_FALSE(fs_.FileExists(SegmentPath(5)));
}

TEST_F(WalTest, SequenceGapBetweenSegmentsIsDetected) {
  std::unique_ptr<WalWriter> writer = WriteRecords(&fs_, 1, 3);
  ASSERT_EQ(*writer->Rotate(), 4u);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(writer->Append(kType, Payload(4 + i)).ok());
  ASSERT_EQ(*writer->Rotate(), 7u);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(writer->Append(kType, Payload(7 + i)).ok());
  ASSERT_TRUE(writer->Close().ok());
  ASSERT_TRUE(fs_.RemoveFile(SegmentPath(4)).ok());

  Replayed refused = Replay(&fs_);
  ASSERT_TRUE(absl::IsDataLoss(refused.status)) << refused.status;
  EXPECT_NE(refused.status.message().find("sequence gap"), std::string::npos) << refused.status;
  EXPECT_NE(refused.status.message().find(SegmentPath(7)), std::string::npos) << refused.status;

  ReplayOptions options;
  options.truncate_at_corruption = true;
  Replayed cut = Replay(&fs_, 1, options);
  ASSERT_TRUE(cut.status.ok()) << cut.status;
  EXPECT_EQ(cut.records.size(), 3u);
  EXPECT_EQ(cut.result.next_sequence, 4u);
  EXPECT_FALSE(fs_.FileExists(SegmentPath(7)));
}

TEST_F(WalTest, GapBelowTheFromSequenceIsAccepted) {
  std::unique_ptr<WalWriter> writer = WriteRecords(&fs_, 1, 3);
  ASSERT_TRUE(writer->Close().ok());
  // A snapshot covers up to 10; the log was continued at 11.
  WriteRecords(&fs_, 11, 2);
  Replayed replayed = Replay(&fs_, 11);
  ASSERT_TRUE(replayed.status.ok()) << replayed.status;
  EXPECT_EQ(replayed.records.size(), 2u);
  EXPECT_EQ(replayed.result.next_sequence, 13u);
  // Falling back to an older snapshot would need 4..10, which are gone.
  EXPECT_TRUE(absl::IsDataLoss(Replay(&fs_, 2).status));
}

TEST_F(WalTest, MissingStartOfTheLogIsDataLoss) {
  WriteRecords(&fs_, 50, 3);
  Replayed replayed = Replay(&fs_, 1);
  ASSERT_TRUE(absl::IsDataLoss(replayed.status)) << replayed.status;
  EXPECT_NE(replayed.status.message().find("starts at sequence 50"), std::string::npos);
  EXPECT_TRUE(Replay(&fs_, 50).status.ok());
}

TEST_F(WalTest, BadSegmentHeaderRefuses) {
  WriteRecords(&fs_, 1, 3);
  ASSERT_TRUE(fs_.CorruptByte(SegmentPath(1), 2).ok());
  Replayed replayed = Replay(&fs_);
  ASSERT_TRUE(absl::IsDataLoss(replayed.status)) << replayed.status;
  EXPECT_NE(replayed.status.message().find("offset 0"), std::string::npos) << replayed.status;
}

TEST_F(WalTest, HeaderThatDisagreesWithTheFileNameRefuses) {
  WriteRecords(&fs_, 1, 3);
  ASSERT_TRUE(fs_.RenameFile(SegmentPath(1), SegmentPath(2)).ok());
  Replayed replayed = Replay(&fs_, 2);
  EXPECT_TRUE(absl::IsDataLoss(replayed.status)) << replayed.status;
}

TEST_F(WalTest, CallbackErrorStopsReplay) {
  WriteRecords(&fs_, 1, 10);
  int calls = 0;
  absl::StatusOr<ReplayResult> result =
      ReplayWal(&fs_, kDir, 1, [&](uint64_t seq, uint8_t, std::string_view) {
        ++calls;
        return seq == 4 ? absl::InvalidArgumentError("bad record") : absl::OkStatus();
      });
  EXPECT_TRUE(absl::IsInvalidArgument(result.status()));
  EXPECT_EQ(calls, 4);
}

TEST_F(WalTest, DiskFullIsStickyAndNothingPastItIsReportedDurable) {
  std::unique_ptr<WalWriter> writer = WriteRecords(&fs_, 1, 0);
  fs_.SetSpaceLimit(fs_.bytes_used() + 2000);

  std::vector<uint64_t> acknowledged;
  absl::Status failure;
  uint64_t failed_seq = 0;
  for (int i = 0; i < 1000 && failure.ok(); ++i) {
    absl::StatusOr<uint64_t> seq = writer->Append(kType, std::string(100, 'x'));
    ASSERT_TRUE(seq.ok()) << seq.status();
    failure = writer->WaitDurable(*seq);
    if (failure.ok()) acknowledged.push_back(*seq);
    failed_seq = *seq;
  }
  ASSERT_TRUE(absl::IsResourceExhausted(failure)) << failure;
  EXPECT_NE(failure.message().find("No space left on device"), std::string::npos);
  EXPECT_NE(failure.message().find(SegmentPath(1)), std::string::npos) << failure;
  EXPECT_LT(writer->durable_sequence(), failed_seq);
  EXPECT_EQ(writer->durable_sequence(), acknowledged.back());

  // Freeing space does not revive the log: the tail on disk is a torn write.
  fs_.SetSpaceLimit(FaultInjectionFileSystem::kUnlimitedSpace);
  EXPECT_TRUE(absl::IsResourceExhausted(writer->Append(kType, "more").status()));
  EXPECT_TRUE(absl::IsResourceExhausted(writer->WaitDurable(failed_seq)));
  EXPECT_TRUE(absl::IsResourceExhausted(writer->Sync()));
  EXPECT_TRUE(absl::IsResourceExhausted(writer->Rotate().status()));
  EXPECT_TRUE(writer->WaitDurable(acknowledged.back()).ok()) << "that record is durable";
  EXPECT_LT(writer->durable_sequence(), failed_seq);
  writer->Close().IgnoreError();

  // What survives a power cut is exactly what was acknowledged.
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  Replayed replayed = Replay(&fs_);
  ASSERT_TRUE(replayed.status.ok()) << replayed.status;
  EXPECT_EQ(replayed.records.size(), acknowledged.size());
  EXPECT_EQ(replayed.result.last_sequence, acknowledged.back());
}

TEST_F(WalTest, DiskFullLeavesATornTailThatReplayRepairs) {
  std::unique_ptr<WalWriter> writer = WriteRecords(&fs_, 1, 0);
  fs_.SetSpaceLimit(fs_.bytes_used() + 1050);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(writer->Append(kType, std::string(100, 'y')).ok());
  ASSERT_TRUE(absl::IsResourceExhausted(writer->Sync()));
  writer->Close().IgnoreError();

  // The process exits, the page cache keeps the partial record.
  Replayed replayed = Replay(&fs_);
  ASSERT_TRUE(replayed.status.ok()) << replayed.status;
  EXPECT_TRUE(replayed.result.torn_tail_repaired);
  EXPECT_EQ(replayed.records.size(), 9u);  // 9 * 109 bytes fit in 1050.
}

TEST_F(WalTest, SyncFailureIsSticky) {
  std::unique_ptr<WalWriter> writer = WriteRecords(&fs_, 1, 3);
  fs_.SetSyncFailure(absl::InternalError("fdatasync: Input/output error"));
  absl::StatusOr<uint64_t> seq = writer->Append(kType, "x");
  ASSERT_TRUE(seq.ok());
  EXPECT_TRUE(absl::IsInternal(writer->WaitDurable(*seq)));
  fs_.SetSyncFailure(absl::OkStatus());
  EXPECT_TRUE(absl::IsInternal(writer->Sync()));
  EXPECT_TRUE(absl::IsInternal(writer->Append(kType, "y").status()));
  EXPECT_EQ(writer->durable_sequence(), 3u);
}

TEST_F(WalTest, EveryAcknowledgedRecordSurvivesAPowerCut) {
  // Fails if WaitDurable reports a record durable without its fsync: the
  // crash drops every unsynced byte.
  std::unique_ptr<WalWriter> writer = WriteRecords(&fs_, 1, 0);
  uint64_t acknowledged = 0;
  for (uint64_t i = 1; i <= 60; ++i) {
    absl::StatusOr<uint64_t> seq = writer->Append(kType, Payload(i));
    ASSERT_TRUE(seq.ok());
    if (i % 3 == 0 && i <= 45) {
      ASSERT_TRUE(writer->WaitDurable(*seq).ok());
      acknowledged = *seq;
    }
  }
  fs_.SimulateCrash(CrashMode::kDropUnsynced);

  Replayed replayed = Replay(&fs_);
  ASSERT_TRUE(replayed.status.ok()) << replayed.status;
  EXPECT_EQ(acknowledged, 45u);
  for (uint64_t seq = 1; seq <= acknowledged; ++seq) {
    ASSERT_TRUE(replayed.records.contains(seq)) << "acknowledged record " << seq << " lost";
    EXPECT_EQ(replayed.records[seq], Payload(seq));
  }
}

TEST_F(WalTest, AcknowledgedRecordsSurviveAPowerCutDuringConcurrentAppends) {
  const CrashMode modes[] = {CrashMode::kDropUnsynced, CrashMode::kTearUnsynced,
                             CrashMode::kTearUnsyncedWithGarbage};
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    CrashMode mode = modes[seed % 3];
    SCOPED_TRACE(::testing::Message() << "seed " << seed << " mode " << static_cast<int>(mode));
    FaultInjectionFileSystem fs(seed);
    ASSERT_TRUE(fs.CreateDirIfMissing(kDir).ok());
    WalWriterOptions options;
    options.segment_size_limit = 2048;  // Crash also around rotations.
    absl::StatusOr<std::unique_ptr<WalWriter>> writer = WalWriter::Open(&fs, kDir, 1, options);
    ASSERT_TRUE(writer.ok());

    std::mutex mu;
    std::map<uint64_t, std::string> acknowledged;
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (uint64_t i = 0; !stop.load(); ++i) {
          std::string payload = Payload(t * 100000 + i);
          absl::StatusOr<uint64_t> seq = (*writer)->Append(kType, payload);
          if (!seq.ok() || !(*writer)->WaitDurable(*seq).ok()) return;
          std::lock_guard lock(mu);
          acknowledged[*seq] = payload;
        }
      });
    }
    absl::SleepFor(absl::Milliseconds(5 + seed % 4));
    fs.CutPower();
    stop = true;
    for (std::thread& thread : threads) thread.join();
    (*writer)->Close().IgnoreError();
    writer->reset();
    fs.SimulateCrash(mode);

    Replayed replayed = Replay(&fs);
    ASSERT_TRUE(replayed.status.ok()) << replayed.status;
    ASSERT_FALSE(acknowledged.empty());
    for (const auto& [seq, payload] : acknowledged) {
      ASSERT_TRUE(replayed.records.contains(seq)) << "acknowledged record " << seq << " lost";
      EXPECT_EQ(replayed.records[seq], payload);
    }
    // And the log continues cleanly after recovery.
    WriteRecords(&fs, replayed.result.next_sequence, 1);
    EXPECT_TRUE(Replay(&fs).status.ok());
  }
}

}  // namespace
}  // namespace kole::storage
