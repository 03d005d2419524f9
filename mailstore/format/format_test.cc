// Round trips of every on-disk format, and damage to each part of them
// detected and named.
#include <fcntl.h>

#include <cstring>
#include <memory>

#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"
#include "mailstore/format/checkpoint.h"
#include "mailstore/format/codec.h"
#include "mailstore/format/edb_header.h"
#include "mailstore/format/log_format.h"
#include "mailstore/format/page.h"

namespace dagvault::mailstore {
namespace {

using dagvault::testing::TempDir;

Signature Sig(uint8_t seed, int64_t t) {
  Signature s;
  for (int i = 0; i < 16; ++i) s.random[i] = static_cast<uint8_t>(seed + i);
  s.created_us = t;
  return s;
}

DbHeader SampleHeader(uint32_t page_size) {
  DbHeader h;
  h.page_size = page_size;
  h.db_signature = Sig(1, 1000);
  h.log_signature = Sig(50, 2000);
  h.state = DbState::kDirtyShutdown;
  h.db_index = 2;
  h.db_name = "mailbox-db-7";
  h.log_required_min = 0x10;
  h.log_required_max = 0x14;
  h.log_committed = 0x15;
  h.consistent_lsn = Lsn{0x0F, 4200};
  h.consistent_time_us = 123456789;
  h.last_attach_lsn = Lsn{0x10, 4096};
  h.last_attach_time_us = 987654321;
  h.dbtime = 0xABCDEF;
  h.update_count = 41;
  h.previous_full = {3, 9, 111, true};
  h.previous_incremental = {10, 12, 222, true};
  h.previous_differential = {10, 11, 333, false};
  h.previous_copy = {4, 8, 444, true};
  h.checkpoint = Lsn{0x11, 8192};
  return h;
}

// Byte ranges of each header field within a header page (see
// edb_header.cc), to damage them one by one.
struct Field {
  const char* name;
  uint32_t offset;
};
const Field kFields[] = {
    {"format_version", 40},
    {"page_size", 44},
    {"db_signature", 48},
    {"log_signature", 72},
    {"state", 96},
    {"db_index", 100},
    {"log_required_min", 104},
    {"log_required_max", 108},
    {"log_committed", 112},
    {"consistent_position", 120},
    {"consistent_time", 128},
    {"last_attach_position", 136},
    {"last_attach_time", 144},
    {"dbtime", 152},
    {"update_count", 160},
    {"previous_full", 168},
    {"previous_incremental", 192},
    {"previous_differential", 216},
    {"previous_copy", 240},
    {"db_name", 264},
};

std::string WriteHeaderFile(const TempDir& dir, const DbHeader& h) {
  const std::string path = dir.Sub("h.edb");
  auto f = File::Open(path, O_RDWR | O_CREAT | O_TRUNC);
  EXPECT_TRUE(f.ok());
  DbHeader copy = h;
  EXPECT_TRUE(WriteDbHeader(*f, copy).ok());
  return path;
}

void FlipByte(const std::string& path, uint64_t offset, uint8_t mask = 0x01) {
  auto f = File::Open(path, O_RDWR);
  ASSERT_TRUE(f.ok());
  uint8_t b;
  ASSERT_TRUE(f->ReadAt(offset, &b, 1).ok());
  b ^= mask;
  ASSERT_TRUE(f->WriteAt(offset, &b, 1).ok());
}

TEST(PageFormat, SealedPageVerifiesAndDamageIsNamed) {
  for (uint32_t size : {4096u, 8192u, 16384u, 32768u}) {
    std::unique_ptr<uint8_t[]> page(new uint8_t[size]);
    InitPage(page.get(), size, 77, PageType::kBTreeLeaf);
    SetPageDbTime(page.get(), 5);
    page.get()[500] = 9;
    SealPage(page.get(), size);
    EXPECT_TRUE(VerifyPage(page.get(), size, 77).ok());

    page.get()[size - 1] ^= 1;  // body
    absl::Status s = VerifyPage(page.get(), size, 77);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(s.message().find("page 77 (offset " + std::to_string(77ull * size) + ")"),
              std::string::npos)
        << s;
    EXPECT_NE(s.message().find("checksum mismatch"), std::string::npos);
    page.get()[size - 1] ^= 1;

    // A correctly checksummed page at the wrong place: a misdirected write.
    s = VerifyPage(page.get(), size, 78);
    EXPECT_NE(s.message().find("holds page number 77"), std::string::npos) << s;
  }
  std::unique_ptr<uint8_t[]> zero(new uint8_t[8192]());
  EXPECT_TRUE(VerifyPage(zero.get(), 8192, 3).ok());
}

TEST(DbHeaderFormat, RoundTripsEveryField) {
  for (uint32_t size : {4096u, 32768u}) {
    TempDir dir("format");
    DbHeader h = SampleHeader(size);
    const std::string path = WriteHeaderFile(dir, h);
    auto read = ReadDbHeaderFromPath(path);
    ASSERT_TRUE(read.ok()) << read.status();
    h.update_count++;  // WriteDbHeader bumps it
    EXPECT_EQ(read->header, h);
    EXPECT_TRUE(read->copy_status[0].ok() && read->copy_status[1].ok());
  }
}

TEST(DbHeaderFormat, DamageToEachFieldIsDetectedNamedAndSurvivedThroughTheOtherCopy) {
  for (const Field& field : kFields) {
    TempDir dir("format");
    DbHeader h = SampleHeader(8192);
    const std::string path = WriteHeaderFile(dir, h);
    FlipByte(path, field.offset, 0x10);  // copy 0
    auto read = ReadDbHeaderFromPath(path);
    ASSERT_TRUE(read.ok()) << field.name << ": " << read.status();
    EXPECT_EQ(read->header.log_required_min, h.log_required_min) << field.name;
    EXPECT_EQ(read->header.db_name, h.db_name) << field.name;
    ASSERT_FALSE(read->copy_status[0].ok()) << field.name;
    EXPECT_TRUE(read->copy_status[1].ok());
    const std::string message(read->copy_status[0].message());
    EXPECT_NE(message.find("header copy 0"), std::string::npos) << message;
    EXPECT_NE(message.find(field.name), std::string::npos) << field.name << ": " << message;
  }
}

TEST(DbHeaderFormat, BothCopiesDamagedIsAnErrorNamingTheFile) {
  TempDir dir("format");
  const std::string path = WriteHeaderFile(dir, SampleHeader(8192));
  FlipByte(path, 104);
  FlipByte(path, 8192 + 104);
  auto read = ReadDbHeaderFromPath(path);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(read.status().message().find(path), std::string::npos);
  EXPECT_NE(read.status().message().find("both header copies"), std::string::npos);
}

TEST(DbHeaderFormat, NewerFormatVersionIsRefusedClearly) {
  TempDir dir("format");
  DbHeader h = SampleHeader(8192);
  h.format_version = kDbFormatVersion + 1;
  const std::string path = WriteHeaderFile(dir, h);
  auto read = ReadDbHeaderFromPath(path);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(read.status().message().find("newer than this build supports"), std::string::npos)
      << read.status();
}

TEST(DbHeaderFormat, NotADatabaseIsSaidSo) {
  TempDir dir("format");
  ASSERT_TRUE(WriteFileAtomically(dir.Sub("x.edb"), std::string(20000, 'x')).ok());
  auto read = ReadDbHeaderFromPath(dir.Sub("x.edb"));
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("not a mailstore database"), std::string::npos)
      << read.status();
}

LogHeader SampleLogHeader(Generation g) {
  LogHeader h;
  h.generation = g;
  h.file_size = 64 << 10;
  h.log_signature = Sig(9, 555);
  h.created_us = 777;
  h.has_prev_link = true;
  h.prev_link.fill(0xAB);
  h.circular_logging = true;
  h.page_size = 8192;
  h.databases = {{0, Sig(1, 1)}, {1, Sig(2, 2)}};
  return h;
}

// A log file image: header, two records, a commit, then optionally a seal.
std::string BuildLog(Generation g, bool seal) {
  std::string data = EncodeLogHeader(SampleLogHeader(g));
  auto append = [&](RecordType type, const std::string& body) {
    AppendRecord(
        &data, Lsn{g, static_cast<uint32_t>(data.size())}, type, 1,
        {absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(body.data()), body.size())});
  };
  uint8_t prefix[kPageDeltaPrefixSize];
  EncodePageDeltaPrefix(12, 1, 5, 6, prefix);
  std::string delta(reinterpret_cast<const char*>(prefix), sizeof(prefix));
  delta += std::string("\x40\x00\x03\x00xyz", 7);
  append(RecordType::kPageDelta, delta);
  append(RecordType::kPageDelta, delta);
  append(RecordType::kCommit, EncodeCommitBody({1, 99, 2}));
  if (seal) append(RecordType::kSeal, EncodeSealBody({3, 100}));
  data.resize(64 << 10, '\0');
  return data;
}

TEST(LogFormat, HeaderRoundTrips) {
  LogHeader h = SampleLogHeader(0x1A);
  std::string encoded = EncodeLogHeader(h);
  ASSERT_EQ(encoded.size(), kLogHeaderSize);
  auto decoded = DecodeLogHeader(reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size());
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->generation, 0x1Au);
  EXPECT_EQ(decoded->log_signature, h.log_signature);
  EXPECT_EQ(decoded->prev_link, h.prev_link);
  EXPECT_TRUE(decoded->circular_logging);
  EXPECT_EQ(decoded->databases, h.databases);
  encoded[20] ^= 1;
  EXPECT_FALSE(
      DecodeLogHeader(reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size()).ok());
}

TEST(LogFormat, ClosedLogScansCleanAndDamageIsNamedByOffset) {
  TempDir dir("format");
  const std::string path = dir.Sub("E000000001A.log");
  ASSERT_TRUE(WriteFileAtomically(path, BuildLog(0x1A, true)).ok());
  auto scan = ScanLogFile(path);
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_TRUE(scan->sealed);
  EXPECT_EQ(scan->records.size(), 4u);
  EXPECT_TRUE(CheckClosedLog(*scan).ok());
  auto delta = DecodePageDelta(scan->records[0], 8192);
  ASSERT_TRUE(delta.ok());
  EXPECT_EQ(delta->pgno, 12u);
  EXPECT_EQ(delta->dbtime_after, 6u);

  // Damage the second record's body.
  const uint32_t second = scan->records[1].lsn.offset;
  FlipByte(path, second + 30);
  scan = ScanLogFile(path);
  ASSERT_TRUE(scan.ok());
  absl::Status s = CheckClosedLog(*scan);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(path), std::string::npos) << s;
  EXPECT_NE(s.message().find("offset " + std::to_string(second)), std::string::npos) << s;
  EXPECT_NE(s.message().find("checksum mismatch"), std::string::npos) << s;
  EXPECT_EQ(scan->tail, LogFileScan::Tail::kCorruptMidstream);
}

TEST(LogFormat, OpenLogWithTornTailPassesButMidstreamDamageDoesNot) {
  TempDir dir("format");
  const std::string path = dir.Sub("E00.log");
  std::string data = BuildLog(0x1B, false);
  // A torn last write: garbage after the commit, nothing valid beyond.
  const size_t end = kLogHeaderSize + 3 * RecordSpace(kPageDeltaPrefixSize + 7);
  for (size_t i = 0; i < 100; ++i) data[end + i + 8] = static_cast<char>(i * 7 + 1);
  ASSERT_TRUE(WriteFileAtomically(path, data).ok());
  auto scan = ScanLogFile(path);
  ASSERT_TRUE(scan.ok());
  EXPECT_EQ(scan->tail, LogFileScan::Tail::kTorn);
  EXPECT_TRUE(CheckOpenLog(*scan).ok());
  EXPECT_FALSE(CheckClosedLog(*scan).ok());  // a closed log must be sealed
}

TEST(LogFormat, RecordAtTheWrongPositionDoesNotValidate) {
  std::string data = BuildLog(0x1C, true);
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  EXPECT_TRUE(ParseRecordAt(p, data.size(), 0x1C, kLogHeaderSize).ok());
  auto wrong_gen = ParseRecordAt(p, data.size(), 0x1D, kLogHeaderSize);
  ASSERT_FALSE(wrong_gen.ok());
  EXPECT_NE(wrong_gen.status().message().find("belongs at generation 0x0000001C"),
            std::string::npos);
}

TEST(LogFormat, HugeRecordLengthIsRefusedNotFollowed) {
  std::string data = BuildLog(0x1E, true);
  // A damaged length near 2^32 must not wrap around the bounds check.
  StoreU32(reinterpret_cast<uint8_t*>(data.data()) + kLogHeaderSize + 4, 0xFFFFFFF0u);
  auto r = ParseRecordAt(reinterpret_cast<const uint8_t*>(data.data()), data.size(), 0x1E,
                         kLogHeaderSize);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("invalid record length"), std::string::npos) << r.status();
}

TEST(LogFormat, SealThatMiscountsTheRecordsIsDamage) {
  TempDir dir("format");
  std::string data = EncodeLogHeader(SampleLogHeader(0x1F));
  const std::string commit = EncodeCommitBody({1, 2, 0});
  const std::string seal = EncodeSealBody({5, 3});  // there is only one record
  AppendRecord(
      &data, Lsn{0x1F, static_cast<uint32_t>(data.size())}, RecordType::kCommit, 0,
      {absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(commit.data()), commit.size())});
  AppendRecord(
      &data, Lsn{0x1F, static_cast<uint32_t>(data.size())}, RecordType::kSeal, 0,
      {absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(seal.data()), seal.size())});
  data.resize(64 << 10, '\0');
  ASSERT_TRUE(WriteFileAtomically(dir.Sub("E000000001F.log"), data).ok());
  auto scan = ScanLogFile(dir.Sub("E000000001F.log"));
  ASSERT_TRUE(scan.ok());
  absl::Status s = CheckClosedLog(*scan);
  EXPECT_NE(s.message().find("the seal counts 5 records, the file holds 1"), std::string::npos)
      << s;
}

TEST(LogFormat, FileNames) {
  EXPECT_EQ(LogFileName("E00", 0x1A), "E000000001A.log");
  EXPECT_EQ(ParseLogFileName("E00", "E000000001A.log"), 0x1Au);
  EXPECT_FALSE(ParseLogFileName("E00", "E00.log").has_value());
  EXPECT_FALSE(ParseLogFileName("E00", "E000000001a.log").has_value());
  EXPECT_FALSE(ParseLogFileName("E01", "E000000001A.log").has_value());
  TempDir dir("format");
  for (const char* n : {"E0000000001.log", "E0000000002.log", "E0000000004.log", "E00.log"}) {
    ASSERT_TRUE(WriteFileAtomically(dir.Sub(n), "x").ok());
  }
  auto listing = ListLogStream(dir.path(), "E00");
  ASSERT_TRUE(listing.ok());
  EXPECT_EQ(listing->closed.size(), 3u);
  EXPECT_TRUE(listing->current.has_value());
  EXPECT_EQ(listing->FirstGap(), 3u);
  EXPECT_EQ(*FindLogPrefixes(dir.path()), std::vector<std::string>{"E00"});
}

TEST(CheckpointFormat, RoundTripsAndSurvivesOneDamagedCopy) {
  TempDir dir("format");
  const std::string path = dir.Sub("E00.chk");
  Checkpoint c;
  c.log_signature = Sig(3, 33);
  c.position = Lsn{0x22, 8192};
  c.time_us = 5;
  c.databases = {{0, Sig(4, 44)}};
  ASSERT_TRUE(WriteCheckpointFile(path, c).ok());
  auto read = ReadCheckpointFile(path);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->checkpoint, c);
  EXPECT_TRUE(read->BothValid());

  FlipByte(path, 50);  // copy 0's position field
  read = ReadCheckpointFile(path);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->checkpoint.position, c.position);
  ASSERT_FALSE(read->copy_status[0].ok());
  EXPECT_NE(read->copy_status[0].message().find("copy 0 (offset 0)"), std::string::npos)
      << read->copy_status[0];

  FlipByte(path, kCheckpointCopySize + 50);  // and copy 1
  read = ReadCheckpointFile(path);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("both checkpoint copies"), std::string::npos);
  EXPECT_NE(read.status().message().find(path), std::string::npos);
}

TEST(CheckpointFormat, NewerVersionIsRefused) {
  Checkpoint c;
  c.format_version = kCheckpointFormatVersion + 1;
  auto read = DecodeCheckpointFile(EncodeCheckpointFile(c), "x.chk");
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("newer"), std::string::npos);
}

}  // namespace
}  // namespace dagvault::mailstore
