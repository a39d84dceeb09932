// Journal: durable, checksummed, group-committed log of commits and quarantines.
#include "aimaster/core/journal.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "aimaster/core/crc32c.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/faulty_file_system.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch::aimaster {
namespace {

using ::testing::HasSubstr;
using testing::ReadFileOrEmpty;
using testing::TempDir;
using testing::WriteFileOrDie;

const JournalHeader kHeader{0x1234abcd5678ef00ull, 1000, "job-a", "/jobs/a/out", "data"};

// Everything a replay delivered, in order.
struct Replayed {
  struct Event {
    bool commit = false;
    CommitRecord c;
    QuarantineRecord q;
  };
  std::vector<Event> events;
  JournalReplay replay() {
    JournalReplay r;
    r.on_commit = [this](const CommitRecord& c) { events.push_back({true, c, {}}); };
    r.on_quarantine = [this](const QuarantineRecord& q) {
      events.push_back({false, {}, q});
    };
    return r;
  }
};

void ExpectSameCommit(const CommitRecord& a, const CommitRecord& b) {
  EXPECT_EQ(a.shard_id, b.shard_id);
  EXPECT_EQ(a.attempt, b.attempt);
  EXPECT_EQ(a.records, b.records);
  EXPECT_EQ(a.task_index, b.task_index);
}

// One record of a test script, appended and expected back.
struct Item {
  bool commit;
  CommitRecord c;
  QuarantineRecord q;
};

uint64_t Append(Journal& j, const Item& item) {
  return item.commit ? j.AppendCommit(item.c) : j.AppendQuarantine(item.q);
}

void ExpectReplayed(const Replayed& got, const std::vector<Item>& want) {
  ASSERT_EQ(got.events.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("record ", i));
    ASSERT_EQ(got.events[i].commit, want[i].commit);
    if (want[i].commit) {
      ExpectSameCommit(got.events[i].c, want[i].c);
    } else {
      EXPECT_EQ(got.events[i].q.shard_id, want[i].q.shard_id);
      EXPECT_EQ(got.events[i].q.errors, want[i].q.errors);
    }
  }
}

std::unique_ptr<Journal> MustOpen(const std::string& dir, Replayed* replayed = nullptr,
                                  JournalHeader header = kHeader) {
  Replayed ignored;
  absl::StatusOr<std::unique_ptr<Journal>> j =
      Journal::Open(dir, header, (replayed != nullptr ? replayed : &ignored)->replay());
  EXPECT_TRUE(j.ok()) << j.status();
  return j.ok() ? *std::move(j) : nullptr;
}

uint32_t MaskedCrc(const std::string& data) {
  const uint32_t crc = Crc32c(0, data.data(), data.size());
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string U32(uint32_t v) {
  std::string out;
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  return out;
}

// A journal frame, spelled out: u32 length, u8 type, u32 masked CRC-32C of the
// payload, u32 masked CRC-32C of those 9 bytes; then the payload.
std::string EncodeFrame(char type, const std::string& payload) {
  std::string head = U32(static_cast<uint32_t>(payload.size()));
  head.push_back(type);
  head += U32(MaskedCrc(payload));
  return head + U32(MaskedCrc(head)) + payload;
}

std::string Binary(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

// A sample of records with awkward values: large varints and errors holding
// NUL bytes, high bytes, newlines, empty strings and a long text.
std::vector<Item> SampleItems() {
  std::vector<Item> items;
  items.push_back({true, {0, 1, 0, 0}, {}});
  items.push_back({true, {999, 4294967295u, 18446744073709551615ull, 4294967295u}, {}});
  items.push_back(
      {false, {}, {7, {"first error", Binary({0, 1, 0xff, 0x80, '\n', 0}), ""}}});
  items.push_back({true, {uint64_t{1} << 40, 7, uint64_t{1} << 33, 65535}, {}});
  items.push_back({false, {}, {8, {}}});
  items.push_back({false, {}, {9, {std::string(10000, 'x') + "\xc3\xa9\r\n\t\"\\"}}});
  items.push_back({true, {3, 2, 128, 127}, {}});
  return items;
}

TEST(JournalTest, NewJournalReplaysNothing) {
  TempDir dir;
  Replayed replayed;
  std::unique_ptr<Journal> j = MustOpen(dir.path() + "/state", &replayed);
  ASSERT_NE(j, nullptr);
  EXPECT_TRUE(replayed.events.empty());
  EXPECT_EQ(j->replay_stats().commits, 0u);
  EXPECT_EQ(j->replay_stats().quarantines, 0u);
  EXPECT_EQ(j->replay_stats().previous_opens, 0u);
  EXPECT_EQ(j->replay_stats().truncated_bytes, 0u);
  EXPECT_EQ(j->path(), dir.path() + "/state/journal");
  EXPECT_TRUE(std::filesystem::exists(j->path()));
  EXPECT_TRUE(j->Sync(0).ok());
  EXPECT_TRUE(j->SyncAll().ok());
}

TEST(JournalTest, AppendSyncReopenReplaysEverythingInOrder) {
  TempDir dir;
  const std::vector<Item> items = SampleItems();
  {
    std::unique_ptr<Journal> j = MustOpen(dir.path());
    ASSERT_NE(j, nullptr);
    uint64_t last = 0;
    for (const Item& item : items) {
      const uint64_t seq = Append(*j, item);
      EXPECT_GT(seq, last);
      last = seq;
    }
    ASSERT_TRUE(j->Sync(last).ok());
    // Durable before the journal is closed: a reader sees everything.
    Replayed read;
    JournalStats stats;
    ASSERT_TRUE(Journal::Read(dir.path(), read.replay(), &stats).ok());
    ExpectReplayed(read, items);
    EXPECT_EQ(stats.commits, 4u);
    EXPECT_EQ(stats.quarantines, 3u);
  }
  Replayed replayed;
  std::unique_ptr<Journal> j = MustOpen(dir.path(), &replayed);
  ASSERT_NE(j, nullptr);
  ExpectReplayed(replayed, items);
  EXPECT_EQ(j->replay_stats().commits, 4u);
  EXPECT_EQ(j->replay_stats().quarantines, 3u);
  EXPECT_EQ(j->replay_stats().previous_opens, 1u);
  EXPECT_EQ(j->replay_stats().truncated_bytes, 0u);
}

TEST(JournalTest, AppendsAfterReopenFollowTheReplayedRecords) {
  TempDir dir;
  std::vector<Item> items = SampleItems();
  {
    std::unique_ptr<Journal> j = MustOpen(dir.path());
    for (size_t i = 0; i < 3; ++i) Append(*j, items[i]);
    ASSERT_TRUE(j->SyncAll().ok());
  }
  {
    std::unique_ptr<Journal> j = MustOpen(dir.path());
    for (size_t i = 3; i < items.size(); ++i) Append(*j, items[i]);
    ASSERT_TRUE(j->SyncAll().ok());
  }
  Replayed replayed;
  std::unique_ptr<Journal> j = MustOpen(dir.path(), &replayed);
  ExpectReplayed(replayed, items);
  EXPECT_EQ(j->replay_stats().previous_opens, 2u);
}

TEST(JournalTest, DestructorFlushesUnsyncedRecords) {
  TempDir dir;
  {
    std::unique_ptr<Journal> j = MustOpen(dir.path());
    j->AppendCommit({5, 1, 10, 2});
  }
  Replayed replayed;
  std::unique_ptr<Journal> j = MustOpen(dir.path(), &replayed);
  ExpectReplayed(replayed, {{true, {5, 1, 10, 2}, {}}});
}

TEST(JournalTest, UnsyncedRecordsAreNotOnDiskYet) {
  TempDir dir;
  std::unique_ptr<Journal> j = MustOpen(dir.path());
  const uint64_t a = j->AppendCommit({1, 1, 1, 1});
  ASSERT_TRUE(j->Sync(a).ok());
  j->AppendCommit({2, 1, 1, 1});  // buffered only
  Replayed read;
  ASSERT_TRUE(Journal::Read(dir.path(), read.replay()).ok());
  ExpectReplayed(read, {{true, {1, 1, 1, 1}, {}}});
  ASSERT_TRUE(j->SyncAll().ok());
  Replayed again;
  ASSERT_TRUE(Journal::Read(dir.path(), again.replay()).ok());
  EXPECT_EQ(again.events.size(), 2u);
}

TEST(JournalTest, HeaderOfAnotherLayoutIsRefused) {
  TempDir dir;
  {
    std::unique_ptr<Journal> j = MustOpen(dir.path());
    j->AppendCommit({1, 1, 1, 1});
  }
  const std::string before = ReadFileOrEmpty(dir.path() + "/journal");
  Replayed replayed;
  JournalHeader layout = kHeader;
  ++layout.layout_fingerprint;
  auto other_layout = Journal::Open(dir.path(), layout, replayed.replay());
  ASSERT_FALSE(other_layout.ok());
  EXPECT_EQ(other_layout.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(other_layout.status().message()),
              HasSubstr("another input layout"));
  EXPECT_THAT(std::string(other_layout.status().message()), HasSubstr(dir.path()));
  EXPECT_TRUE(replayed.events.empty());

  JournalHeader count = kHeader;
  ++count.total_shards;
  auto other_count = Journal::Open(dir.path(), count, replayed.replay());
  ASSERT_FALSE(other_count.ok());
  EXPECT_EQ(other_count.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(replayed.events.empty());

  // Refusing changes nothing and releases the lock: the right job still opens.
  EXPECT_EQ(ReadFileOrEmpty(dir.path() + "/journal"), before);
  Replayed good;
  std::unique_ptr<Journal> j = MustOpen(dir.path(), &good);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(good.events.size(), 1u);
  EXPECT_EQ(j->replay_stats().previous_opens, 1u);
}

TEST(JournalTest, FileThatIsNotAJournalIsRefused) {
  TempDir dir;
  // An intact record that is not a header.
  const std::string frame = EncodeFrame(2, "\x05\x01\x01\x01");
  WriteFileOrDie(dir.path() + "/a/journal", frame);
  auto j = Journal::Open(dir.path() + "/a", kHeader, {});
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(j.status().message()),
              HasSubstr("not an ElasticBatch journal"));
  EXPECT_EQ(ReadFileOrEmpty(dir.path() + "/a/journal"), frame);

  // Some other file altogether.
  const std::string text = "this is somebody's notes, not a journal\n";
  WriteFileOrDie(dir.path() + "/b/journal", text);
  auto k = Journal::Open(dir.path() + "/b", kHeader, {});
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(k.status().message()),
              HasSubstr("not an ElasticBatch journal"));
  EXPECT_EQ(ReadFileOrEmpty(dir.path() + "/b/journal"), text);
}

TEST(JournalTest, SecondOpenOfTheSameDirIsRefusedWhileTheFirstIsOpen) {
  TempDir dir;
  std::unique_ptr<Journal> first = MustOpen(dir.path());
  ASSERT_NE(first, nullptr);
  auto second = Journal::Open(dir.path(), kHeader, {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("in use"));
  // The refused open did not break the holder or its lock.
  const uint64_t seq = first->AppendCommit({1, 1, 1, 1});
  EXPECT_TRUE(first->Sync(seq).ok());
  auto third = Journal::Open(dir.path(), kHeader, {});
  EXPECT_EQ(third.status().code(), absl::StatusCode::kFailedPrecondition);
  first.reset();
  Replayed replayed;
  std::unique_ptr<Journal> after = MustOpen(dir.path(), &replayed);
  ASSERT_NE(after, nullptr);
  EXPECT_EQ(replayed.events.size(), 1u);
}

TEST(JournalTest, UncreatableStateDirIsAFailedPrecondition) {
  TempDir dir;
  WriteFileOrDie(dir.path() + "/file", "not a directory");
  auto j = Journal::Open(dir.path() + "/file/state", kHeader, {});
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(j.status().message()), HasSubstr(dir.path() + "/file/state"));
}

TEST(JournalTest, PreviousOpensCountsEveryOpen) {
  TempDir dir;
  for (uint64_t i = 0; i < 4; ++i) {
    std::unique_ptr<Journal> j = MustOpen(dir.path());
    ASSERT_NE(j, nullptr);
    EXPECT_EQ(j->replay_stats().previous_opens, i);
  }
  JournalStats stats;
  ASSERT_TRUE(Journal::Read(dir.path(), {}, &stats).ok());
  EXPECT_EQ(stats.previous_opens, 4u);
}

TEST(JournalTest, ReadOfAMissingJournalIsNotFound) {
  TempDir dir;
  EXPECT_EQ(Journal::Read(dir.path() + "/nothing", {}).code(),
            absl::StatusCode::kNotFound);
}

// Writes `items` to a journal in `dir`; returns the file size before the last
// item and after it.
std::pair<uint64_t, uint64_t> WriteJournal(const std::string& dir,
                                           const std::vector<Item>& items) {
  std::unique_ptr<Journal> j = MustOpen(dir);
  for (size_t i = 0; i + 1 < items.size(); ++i) Append(*j, items[i]);
  EXPECT_TRUE(j->SyncAll().ok());
  const uint64_t before = std::filesystem::file_size(j->path());
  Append(*j, items.back());
  EXPECT_TRUE(j->SyncAll().ok());
  const uint64_t after = std::filesystem::file_size(j->path());
  return {before, after};
}

// Opens a journal whose file is `bytes`, expects `want` back with
// `truncated` bytes cut, then appends a record and checks it follows.
void ExpectRecovers(const std::string& dir, const std::string& bytes,
                    const std::vector<Item>& want, uint64_t truncated) {
  WriteFileOrDie(dir + "/journal", bytes);
  {
    Replayed replayed;
    std::unique_ptr<Journal> j = MustOpen(dir, &replayed);
    ASSERT_NE(j, nullptr);
    ExpectReplayed(replayed, want);
    EXPECT_EQ(j->replay_stats().truncated_bytes, truncated);
    EXPECT_EQ(j->replay_stats().previous_opens, 1u);
    const uint64_t seq = j->AppendCommit({424242, 9, 99, 3});
    ASSERT_TRUE(j->Sync(seq).ok());
  }
  std::vector<Item> with_new = want;
  with_new.push_back({true, {424242, 9, 99, 3}, {}});
  Replayed replayed;
  JournalStats stats;
  ASSERT_TRUE(Journal::Read(dir, replayed.replay(), &stats).ok());
  ExpectReplayed(replayed, with_new);
  EXPECT_EQ(stats.previous_opens, 2u);
}

void TornTailTest(const std::vector<Item>& items) {
  TempDir dir;
  const auto [before, after] = WriteJournal(dir.path() + "/orig", items);
  ASSERT_LT(before, after);
  const std::string full = ReadFileOrEmpty(dir.path() + "/orig/journal");
  ASSERT_EQ(full.size(), after);
  const std::vector<Item> prefix(items.begin(), items.end() - 1);
  for (uint64_t cut = before; cut < after; ++cut) {
    SCOPED_TRACE(absl::StrCat("cut at ", cut, " of ", after));
    ExpectRecovers(absl::StrCat(dir.path(), "/cut", cut), full.substr(0, cut), prefix,
                   cut - before);
    if (::testing::Test::HasFatalFailure()) return;
  }
  // The untouched file loses nothing.
  ExpectRecovers(dir.path() + "/whole", full, items, 0);
}

TEST(JournalTest, TornCommitAtTheTailIsCutOffAtEveryOffset) {
  std::vector<Item> items = SampleItems();
  items.push_back({true, {uint64_t{1} << 50, 3, 1234567, 77}, {}});
  TornTailTest(items);
}

TEST(JournalTest, TornQuarantineAtTheTailIsCutOffAtEveryOffset) {
  std::vector<Item> items = SampleItems();
  items.push_back({false, {}, {55, {"boom", Binary({0, 0xfe, '\n'}), "", "last"}}});
  TornTailTest(items);
}

TEST(JournalTest, ZerosOrAPartialFrameAfterTheLastRecordAreATornTail) {
  TempDir dir;
  const std::vector<Item> items = SampleItems();
  WriteJournal(dir.path() + "/orig", items);
  const std::string full = ReadFileOrEmpty(dir.path() + "/orig/journal");
  const std::string next = EncodeFrame(2, "\x07\x01\x02\x03");
  const std::string long_frame = EncodeFrame(3, std::string(100, 'q'));
  const std::vector<std::string> tails = {
      std::string(1, '\0'),
      std::string(8, '\0'),
      std::string(13, '\0'),
      std::string(4096, '\0'),  // the file was extended, its data never written
      std::string(12, '\xff'),  // less than a frame header
      next.substr(0, 5),
      next.substr(0, next.size() - 1),
      long_frame.substr(0, 60),  // a valid header whose payload runs past the end
  };
  for (size_t i = 0; i < tails.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("tail ", i));
    JournalStats stats;
    WriteFileOrDie(absl::StrCat(dir.path(), "/r", i, "/journal"), full + tails[i]);
    ASSERT_TRUE(Journal::Read(absl::StrCat(dir.path(), "/r", i), {}, &stats).ok());
    EXPECT_EQ(stats.truncated_bytes, tails[i].size());  // seen, left in place
    ExpectRecovers(absl::StrCat(dir.path(), "/g", i), full + tails[i], items,
                   tails[i].size());
  }
}

// What follows the last record and is neither zeros nor a frame cut short is
// damage: a restart must stop, not cut it off.
TEST(JournalTest, GarbageAfterTheLastRecordIsCorruption) {
  TempDir dir;
  const std::vector<Item> items = SampleItems();
  WriteJournal(dir.path() + "/orig", items);
  const std::string full = ReadFileOrEmpty(dir.path() + "/orig/journal");
  std::mt19937 rng(7);
  std::string random_bytes;
  for (int i = 0; i < 300; ++i) random_bytes.push_back(static_cast<char>(rng()));
  std::string bad_payload = EncodeFrame(2, "\x01\x01\x01\x01");
  bad_payload.back() ^= 0x01;
  std::string huge = U32(0x7fffffff) + std::string(1, '\2') + U32(0);
  huge += U32(MaskedCrc(huge));
  struct Case {
    std::string tail;
    std::string what;
  };
  const std::vector<Case> cases = {
      {std::string(37, '\xff'), "header checksum mismatch"},
      {random_bytes, "header checksum mismatch"},
      {bad_payload, "checksum mismatch"},
      {EncodeFrame(9, "x"), "unknown record type 9"},
      {EncodeFrame(2, "\x80"), "undecodable commit record"},
      {EncodeFrame(3,
                   "\x01\x02\x05"
                   "ab"),
       "undecodable quarantine record"},
      {huge, "length 2147483647 over the limit"},
      {std::string(4096, '\0') + "x", "header checksum mismatch"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("case ", i, ": ", cases[i].what));
    const std::string sub = absl::StrCat(dir.path(), "/g", i);
    const std::string bytes = full + cases[i].tail;
    WriteFileOrDie(sub + "/journal", bytes);
    auto j = Journal::Open(sub, kHeader, {});
    ASSERT_FALSE(j.ok());
    EXPECT_EQ(j.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(std::string(j.status().message()),
                HasSubstr(absl::StrCat("corrupt at byte ", full.size())));
    EXPECT_THAT(std::string(j.status().message()), HasSubstr(cases[i].what));
    EXPECT_EQ(ReadFileOrEmpty(sub + "/journal"), bytes);
    EXPECT_EQ(Journal::Read(sub, {}).code(), absl::StatusCode::kDataLoss);
  }
}

// A damaged byte anywhere in a complete record, the last one included, is
// DATA_LOSS and changes nothing. (A flipped bit in a length made the frame
// look cut short; the frame header's own checksum tells them apart.)
TEST(JournalTest, ADamagedByteAnywhereIsDataLossNeverACut) {
  TempDir dir;
  std::vector<Item> items = SampleItems();
  items.erase(items.begin() + 5);  // the long one: keep the loop short
  WriteJournal(dir.path() + "/orig", items);
  const std::string full = ReadFileOrEmpty(dir.path() + "/orig/journal");
  for (size_t pos = 0; pos < full.size(); ++pos) {
    SCOPED_TRACE(absl::StrCat("flipped byte ", pos, " of ", full.size()));
    const std::string sub = absl::StrCat(dir.path(), "/flip", pos);
    std::string bad = full;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x10);
    WriteFileOrDie(sub + "/journal", bad);
    auto j = Journal::Open(sub, kHeader, {});
    ASSERT_FALSE(j.ok());
    EXPECT_EQ(j.status().code(), absl::StatusCode::kDataLoss) << j.status();
    EXPECT_EQ(ReadFileOrEmpty(sub + "/journal"), bad);
    std::filesystem::remove_all(sub);
  }
}

TEST(JournalTest, AVersion1JournalIsRefusedAsWrittenByAnOlderAimaster) {
  TempDir dir;
  // Version 1 framed records as u32 length, u32 CRC-32C of (type, payload), type.
  auto v1_frame = [](char type, const std::string& payload) {
    uint32_t crc = Crc32c(0, &type, 1);
    crc = Crc32c(crc, payload.data(), payload.size());
    return U32(static_cast<uint32_t>(payload.size())) + U32(crc) + std::string(1, type) +
           payload;
  };
  // Header: varints magic 0x314A424C, version 1, layout, shard count.
  const std::string bytes = v1_frame(1, Binary({0xcc, 0x84, 0xa9, 0x8a, 0x03, 1, 5, 9})) +
                            v1_frame(4, "") + v1_frame(2, Binary({3, 1, 7, 0}));
  WriteFileOrDie(dir.path() + "/journal", bytes);
  auto j = Journal::Open(dir.path(), kHeader, {});
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(j.status().message()), HasSubstr("older aimaster"));
  EXPECT_THAT(std::string(j.status().message()), HasSubstr("fresh --state-dir"));
  EXPECT_EQ(ReadFileOrEmpty(dir.path() + "/journal"), bytes);
  EXPECT_EQ(Journal::Read(dir.path(), {}).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(JournalTest, TornFirstOpenStartsOver) {
  TempDir dir;
  std::string full;
  {
    std::unique_ptr<Journal> j = MustOpen(dir.path() + "/orig");
    full = ReadFileOrEmpty(j->path());
  }
  // A new journal holds the header record and an empty "opened" record (13 bytes).
  ASSERT_GT(full.size(), 26u);
  const size_t header_bytes = full.size() - 13;
  for (size_t cut = 1; cut < full.size(); ++cut) {
    SCOPED_TRACE(absl::StrCat("cut at ", cut));
    const std::string sub = absl::StrCat(dir.path(), "/h", cut);
    WriteFileOrDie(sub + "/journal", full.substr(0, cut));
    Replayed replayed;
    std::unique_ptr<Journal> j = MustOpen(sub, &replayed);
    ASSERT_NE(j, nullptr);
    EXPECT_TRUE(replayed.events.empty());
    EXPECT_EQ(j->replay_stats().truncated_bytes,
              cut < header_bytes ? cut : cut - header_bytes);
    EXPECT_EQ(j->replay_stats().previous_opens, 0u);
    j.reset();
    // Whatever was cut, the journal is whole again; an intact header is kept
    // (with its job uid), a torn one is written anew.
    const std::string now = ReadFileOrEmpty(sub + "/journal");
    EXPECT_EQ(now.size(), full.size());
    if (cut >= header_bytes) {
      EXPECT_EQ(now, full);
    }
    JournalStats stats;
    ASSERT_TRUE(Journal::Read(sub, {}, &stats).ok());
    EXPECT_EQ(stats.previous_opens, 1u);
  }
}

// A power loss right after a journal was created can leave it extended with
// zeros; more zeros than its first write is damage.
TEST(JournalTest, AZeroFilledJournalStartsOverOnlyIfNoLongerThanItsFirstWrite) {
  TempDir dir;
  std::string first;
  {
    std::unique_ptr<Journal> j = MustOpen(dir.path() + "/orig");
    first = ReadFileOrEmpty(j->path());
  }
  WriteFileOrDie(dir.path() + "/short/journal", std::string(first.size(), '\0'));
  Replayed replayed;
  std::unique_ptr<Journal> j = MustOpen(dir.path() + "/short", &replayed);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(j->replay_stats().truncated_bytes, first.size());
  EXPECT_EQ(ReadFileOrEmpty(j->path()).size(), first.size());  // a new header

  const std::string zeros(first.size() + 1, '\0');
  WriteFileOrDie(dir.path() + "/long/journal", zeros);
  auto k = Journal::Open(dir.path() + "/long", kHeader, {});
  EXPECT_EQ(k.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(k.status().message()), HasSubstr("no intact header"));
  EXPECT_EQ(ReadFileOrEmpty(dir.path() + "/long/journal"), zeros);
}

TEST(JournalTest, DamagedHeaderOfALongJournalIsRefusedNotTruncated) {
  TempDir dir;
  {
    std::unique_ptr<Journal> j = MustOpen(dir.path());
    for (uint64_t id = 0; id < 20; ++id) j->AppendCommit({id, 1, 1, 0});
    ASSERT_TRUE(j->SyncAll().ok());
  }
  std::string bytes = ReadFileOrEmpty(dir.path() + "/journal");
  bytes[15] ^= 0x40;  // flip a bit inside the header record
  WriteFileOrDie(dir.path() + "/journal", bytes);
  auto j = Journal::Open(dir.path(), kHeader, {});
  EXPECT_EQ(j.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(j.status().message()), HasSubstr("no intact header"));
  // Nothing was thrown away.
  EXPECT_EQ(ReadFileOrEmpty(dir.path() + "/journal"), bytes);
}

TEST(JournalTest, LargeJournalReplaysAcrossReadBuffers) {
  TempDir dir;
  constexpr uint64_t kCommits = 150'000;  // about 2 MiB of records
  const std::string big_error(3 << 20, 'e');
  {
    std::unique_ptr<Journal> j = MustOpen(dir.path());
    for (uint64_t i = 0; i < kCommits; ++i) {
      j->AppendCommit(
          {i, static_cast<uint32_t>(i % 5 + 1), i * 3, static_cast<uint32_t>(i % 64)});
      if (i == kCommits / 2)
        j->AppendQuarantine({i + kCommits, {"small", big_error, "tail"}});
    }
    ASSERT_TRUE(j->SyncAll().ok());
  }
  uint64_t next = 0;
  bool ordered = true;
  int quarantines = 0;
  JournalReplay replay;
  replay.on_commit = [&](const CommitRecord& c) {
    ordered = ordered && c.shard_id == next && c.attempt == next % 5 + 1 &&
              c.records == next * 3 && c.task_index == next % 64;
    ++next;
  };
  replay.on_quarantine = [&](const QuarantineRecord& q) {
    ++quarantines;
    EXPECT_EQ(next, kCommits / 2 + 1);
    EXPECT_EQ(q.shard_id, kCommits / 2 + kCommits);
    ASSERT_EQ(q.errors.size(), 3u);
    EXPECT_EQ(q.errors[0], "small");
    EXPECT_TRUE(q.errors[1] == big_error);
    EXPECT_EQ(q.errors[2], "tail");
  };
  auto j = Journal::Open(dir.path(), kHeader, replay);
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_TRUE(ordered);
  EXPECT_EQ(next, kCommits);
  EXPECT_EQ(quarantines, 1);
  EXPECT_EQ((*j)->replay_stats().commits, kCommits);
  EXPECT_EQ((*j)->replay_stats().truncated_bytes, 0u);
}

TEST(JournalTest, ConcurrentSyncsAllSucceedAndEverythingIsDurable) {
  TempDir dir;
  constexpr int kThreads = 6;
  constexpr int kPerThread = 150;
  std::unique_ptr<Journal> j = MustOpen(dir.path());
  ASSERT_NE(j, nullptr);
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const uint64_t id = static_cast<uint64_t>(t) * 1000 + i;
        uint64_t seq;
        if (i % 5 == 4) {
          seq = j->AppendQuarantine({id, {absl::StrCat("thread ", t, " item ", i)}});
        } else {
          seq = j->AppendCommit({id, static_cast<uint32_t>(t), static_cast<uint64_t>(i),
                                 static_cast<uint32_t>(t)});
        }
        if (!j->Sync(seq).ok()) ++failures[t];
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
  // Read while the journal is still open: every Sync'ed record is on disk.
  std::multiset<uint64_t> commits;
  std::multiset<uint64_t> quarantines;
  JournalReplay replay;
  replay.on_commit = [&](const CommitRecord& c) {
    commits.insert(c.shard_id);
    EXPECT_EQ(c.records, c.shard_id % 1000);
    EXPECT_EQ(c.task_index, c.shard_id / 1000);
  };
  replay.on_quarantine = [&](const QuarantineRecord& q) {
    quarantines.insert(q.shard_id);
    ASSERT_EQ(q.errors.size(), 1u);
    EXPECT_EQ(q.errors[0],
              absl::StrCat("thread ", q.shard_id / 1000, " item ", q.shard_id % 1000));
  };
  JournalStats stats;
  ASSERT_TRUE(Journal::Read(dir.path(), replay, &stats).ok());
  EXPECT_EQ(stats.commits + stats.quarantines, uint64_t{kThreads * kPerThread});
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      const uint64_t id = static_cast<uint64_t>(t) * 1000 + i;
      auto& set = i % 5 == 4 ? quarantines : commits;
      EXPECT_EQ(set.count(id), 1u) << id;
    }
  }
}

// The state dir lives inside the output channel, which workers can write: a
// symlink planted there must not make the master write elsewhere.
TEST(JournalTest, SymlinkPlantedAsTheJournalIsRefusedNotFollowed) {
  TempDir dir;
  WriteFileOrDie(dir.path() + "/victim", "precious");
  std::filesystem::create_directories(dir.path() + "/state");
  std::filesystem::create_symlink(dir.path() + "/victim", dir.path() + "/state/journal");
  auto j = Journal::Open(dir.path() + "/state", kHeader, {});
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(j.status().message()), HasSubstr("symbolic link"));
  EXPECT_EQ(ReadFileOrEmpty(dir.path() + "/victim"), "precious");
  EXPECT_FALSE(Journal::Read(dir.path() + "/state", {}).ok());
}

TEST(JournalTest, AHardLinkPlantedAsTheJournalIsRefused) {
  TempDir dir;
  {
    auto j = Journal::Open(dir.path() + "/state", kHeader, {});
    ASSERT_TRUE(j.ok()) << j.status();
  }
  // Whoever can write the state dir keeps a second name to the journal.
  ASSERT_EQ(link((dir.path() + "/state/journal").c_str(), (dir.path() + "/spy").c_str()),
            0);
  auto j = Journal::Open(dir.path() + "/state", kHeader, {});
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(j.status().message()), HasSubstr("hard links"));
}

TEST(JournalTest, SymlinkPlantedAsTheLockIsRefusedNotFollowed) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/state");
  // A dangling link: following it would create the file it names.
  std::filesystem::create_symlink(dir.path() + "/created", dir.path() + "/state/LOCK");
  auto j = Journal::Open(dir.path() + "/state", kHeader, {});
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(j.status().message()), HasSubstr("symbolic link"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/created"));
}

// Item 7: ten acknowledged commits, one bit flipped in the third: a restart
// must not say "2 already committed" and cut the other eight off.
TEST(JournalTest, ACorruptRecordInTheMiddleIsDataLossAndNothingIsCut) {
  TempDir dir;
  std::vector<uint64_t> starts;
  {
    std::unique_ptr<Journal> j = MustOpen(dir.path());
    for (uint64_t id = 0; id < 10; ++id) {
      starts.push_back(std::filesystem::file_size(j->path()));
      ASSERT_TRUE(j->Sync(j->AppendCommit({id, 1, 5, 0})).ok());
    }
  }
  const std::string path = dir.path() + "/journal";
  std::string bytes = ReadFileOrEmpty(path);
  const uint64_t third = starts[2];
  bytes[starts[3] - 1] ^= 0x01;  // the last byte of its payload
  WriteFileOrDie(path, bytes);

  Replayed replayed;
  auto j = Journal::Open(dir.path(), kHeader, replayed.replay());
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), absl::StatusCode::kDataLoss);
  const std::string message(j.status().message());
  EXPECT_THAT(message, HasSubstr(path));
  EXPECT_THAT(message, HasSubstr(absl::StrCat("at byte ", third)));
  EXPECT_THAT(message, HasSubstr("checksum mismatch"));
  EXPECT_THAT(message, HasSubstr(absl::StrCat("truncate -s ", third, " ", path)));
  EXPECT_THAT(message, HasSubstr("--state-dir"));
  EXPECT_EQ(message.find('\n'), std::string::npos);
  EXPECT_EQ(ReadFileOrEmpty(path), bytes);  // nothing was cut

  JournalStats stats;
  EXPECT_EQ(Journal::Read(dir.path(), {}, &stats).code(), absl::StatusCode::kDataLoss);
}

// Item 8: replay refuses payloads over 64 MiB, so an append must never write one.
TEST(JournalTest, AnOversizedRecordIsNeverWrittenAndFailsTheJournal) {
  TempDir dir;
  {
    std::unique_ptr<Journal> j = MustOpen(dir.path());
    ASSERT_TRUE(j->Sync(j->AppendCommit({1, 1, 1, 0})).ok());
    const uint64_t big = j->AppendQuarantine(
        {2, {std::string(40 << 20, 'a'), std::string(30 << 20, 'b')}});
    const uint64_t after = j->AppendCommit({3, 1, 1, 0});
    const absl::Status s = j->Sync(big);
    ASSERT_FALSE(s.ok());
    EXPECT_THAT(std::string(s.message()), HasSubstr("73400")) << s;     // its size
    EXPECT_THAT(std::string(s.message()), HasSubstr("67108864")) << s;  // the limit
    EXPECT_FALSE(j->Sync(after).ok());                                  // sticky
    EXPECT_FALSE(j->SyncAll().ok());
  }
  EXPECT_LT(std::filesystem::file_size(dir.path() + "/journal"), 4096u);
  Replayed replayed;
  std::unique_ptr<Journal> j = MustOpen(dir.path(), &replayed);
  ASSERT_NE(j, nullptr);
  ExpectReplayed(replayed, {{true, {1, 1, 1, 0}, {}}});
  EXPECT_EQ(j->replay_stats().truncated_bytes, 0u);
}

// The largest record replay accepts is written and replayed whole.
TEST(JournalTest, ARecordOfExactlyTheLimitIsWrittenAndReplayed) {
  TempDir dir;
  // Payload: shard (1 byte), count (1), length (4), then the error itself.
  const std::string error((64u << 20) - 6, 'e');
  {
    std::unique_ptr<Journal> j = MustOpen(dir.path());
    ASSERT_TRUE(j->Sync(j->AppendQuarantine({5, {error}})).ok());
  }
  Replayed replayed;
  std::unique_ptr<Journal> j = MustOpen(dir.path(), &replayed);
  ASSERT_EQ(replayed.events.size(), 1u);
  ASSERT_EQ(replayed.events[0].q.errors.size(), 1u);
  EXPECT_TRUE(replayed.events[0].q.errors[0] == error);
}

// A new journal's name must be durable before anything in it is acknowledged:
// a failed directory fsync fails the open (it used to be ignored).
TEST(JournalTest, AFailedDirectorySyncFailsTheOpenOfANewJournal) {
  TempDir dir;
  FaultyFileSystem fs;
  fs.FailSyncDir(EIO);
  auto j = Journal::Open(dir.path(), kHeader, {}, &fs);
  ASSERT_FALSE(j.ok());
  EXPECT_THAT(std::string(j.status().message()), HasSubstr("cannot fsync " + dir.path()));
  // A state dir that the open has to create: its parent is synced, checked too.
  auto nested = Journal::Open(dir.path() + "/new/state", kHeader, {}, &fs);
  ASSERT_FALSE(nested.ok());
  EXPECT_THAT(std::string(nested.status().message()),
              HasSubstr(dir.path() + "/new/state"));
  fs.FailSyncDir(0);
  EXPECT_TRUE(Journal::Open(dir.path() + "/new/state", kHeader, {}, &fs).ok());
}

// The state dir may exist already without its name being durable (made by a
// master that crashed, or by an older aimaster): a new journal syncs the state
// dir's parent too, or a power loss could take the acknowledged records away.
TEST(JournalTest, ANewJournalSyncsItsDirectoryAndTheDirectoryAboveIt) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/out/_state");
  FaultyFileSystem fs;
  {
    auto j = Journal::Open(dir.path() + "/out/_state", kHeader, {}, &fs);
    ASSERT_TRUE(j.ok()) << j.status();
  }
  EXPECT_THAT(fs.synced_dirs(),
              ::testing::ElementsAre(dir.path() + "/out/_state", dir.path() + "/out"));
  // Reopening writes no new name: nothing more to sync.
  ASSERT_TRUE(Journal::Open(dir.path() + "/out/_state", kHeader, {}, &fs).ok());
  EXPECT_EQ(fs.synced_dirs().size(), 2u);
}

TEST(JournalTest, AFailedFirstWriteOrSyncFailsTheOpen) {
  TempDir dir;
  FaultyFileSystem fs;
  fs.FailAppend(1, ENOSPC);
  auto full = Journal::Open(dir.path(), kHeader, {}, &fs);
  ASSERT_FALSE(full.ok());
  EXPECT_THAT(std::string(full.status().message()), HasSubstr("No space left"));
  fs.FailSyncs(EIO);
  auto unsynced = Journal::Open(dir.path(), kHeader, {}, &fs);
  ASSERT_FALSE(unsynced.ok());
  EXPECT_THAT(std::string(unsynced.status().message()), HasSubstr("fdatasync"));
}

// An EIO while replaying is not the end of the journal: taking it for the end
// would cut every record after it.
TEST(JournalTest, AReadErrorIsAnErrorNotTheEndOfTheJournal) {
  TempDir dir;
  {
    std::unique_ptr<Journal> j = MustOpen(dir.path());
    for (uint64_t id = 0; id < 10; ++id) j->AppendCommit({id, 1, 5, 0});
    ASSERT_TRUE(j->SyncAll().ok());
  }
  const std::string path = dir.path() + "/journal";
  const std::string bytes = ReadFileOrEmpty(path);
  FaultyFileSystem fs;
  fs.FailReadAt(bytes.size() / 2, EIO);
  auto j = Journal::Open(dir.path(), kHeader, {}, &fs);
  ASSERT_FALSE(j.ok());
  EXPECT_THAT(std::string(j.status().message()), HasSubstr(path));
  EXPECT_THAT(std::string(j.status().message()), HasSubstr("Input/output error"));
  EXPECT_EQ(fs.truncates(), 0);
  EXPECT_EQ(fs.appends(), 0);
  EXPECT_EQ(ReadFileOrEmpty(path), bytes);

  absl::Status read = Journal::Read(dir.path(), {}, nullptr, &fs);
  EXPECT_FALSE(read.ok());
  EXPECT_THAT(std::string(read.message()), HasSubstr(path));

  fs.FailReadAt(0, 0);
  Replayed replayed;
  ASSERT_NE(MustOpen(dir.path(), &replayed), nullptr);
  EXPECT_EQ(replayed.events.size(), 10u);
}

TEST(JournalTest, AFailedSizeOrTruncateIsAnError) {
  TempDir dir;
  ASSERT_NE(MustOpen(dir.path()), nullptr);
  const std::string path = dir.path() + "/journal";
  const std::string bytes = ReadFileOrEmpty(path);
  FaultyFileSystem fs;
  fs.FailSize(EIO);
  auto unsized = Journal::Open(dir.path(), kHeader, {}, &fs);
  ASSERT_FALSE(unsized.ok());
  EXPECT_THAT(std::string(unsized.status().message()), HasSubstr("cannot stat " + path));
  EXPECT_EQ(ReadFileOrEmpty(path), bytes);
  fs.FailSize(0);

  WriteFileOrDie(path, bytes + std::string(3, '\0'));  // a torn tail to cut
  fs.FailTruncate(EIO);
  auto uncut = Journal::Open(dir.path(), kHeader, {}, &fs);
  ASSERT_FALSE(uncut.ok());
  EXPECT_THAT(std::string(uncut.status().message()),
              HasSubstr("cannot truncate " + path));
  EXPECT_EQ(fs.appends(), 0);  // nothing written after a failed cut
}

// Item 5: a job with the same input layout but another id, output or input
// channel must not resume (and finish) from this journal.
TEST(JournalTest, EachFieldOfAnotherJobIsRefusedByName) {
  TempDir dir;
  {
    std::unique_ptr<Journal> j = MustOpen(dir.path());
    ASSERT_TRUE(j->Sync(j->AppendCommit({1, 1, 1, 1})).ok());
  }
  const std::string before = ReadFileOrEmpty(dir.path() + "/journal");
  struct Case {
    JournalHeader header;
    std::vector<std::string> named;  // what the message must say
  };
  auto with = [](auto change) {
    JournalHeader h = kHeader;
    change(h);
    return h;
  };
  const std::vector<Case> cases = {
      {with([](JournalHeader& h) { h.job_id = "job-b"; }),
       {"its job id is 'job-a' (this job: 'job-b')"}},
      {with([](JournalHeader& h) { h.output_path = "/jobs/b/out"; }),
       {"its output is /jobs/a/out (this job: /jobs/b/out)"}},
      {with([](JournalHeader& h) { h.input_channel = "text"; }),
       {"its input channel is 'data' (this job: 'text')"}},
      {with([](JournalHeader& h) { h.total_shards = 999; }),
       {"another input layout (1000 shards"}},
      {with([](JournalHeader& h) {
         h.job_id = "";
         h.output_path = "/x";
       }),
       {"its job id is 'job-a' (this job: '')",
        "its output is /jobs/a/out (this job: /x)"}},
  };
  const std::vector<std::string> all = {"job id", "its output", "input channel",
                                        "input layout"};
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("case ", i));
    Replayed replayed;
    auto j = Journal::Open(dir.path(), cases[i].header, replayed.replay());
    ASSERT_FALSE(j.ok());
    EXPECT_EQ(j.status().code(), absl::StatusCode::kFailedPrecondition);
    const std::string message(j.status().message());
    EXPECT_THAT(message,
                HasSubstr("state dir " + dir.path() + " belongs to another job"));
    EXPECT_THAT(message, HasSubstr("use a fresh --state-dir"));
    for (const std::string& named : cases[i].named)
      EXPECT_THAT(message, HasSubstr(named));
    int mentioned = 0;
    for (const std::string& field : all)
      mentioned += message.find(field) != std::string::npos;
    EXPECT_EQ(mentioned, static_cast<int>(cases[i].named.size())) << message;
    EXPECT_TRUE(replayed.events.empty());
  }
  EXPECT_EQ(ReadFileOrEmpty(dir.path() + "/journal"), before);
  // The job it belongs to reopens it.
  Replayed replayed;
  ASSERT_NE(MustOpen(dir.path(), &replayed), nullptr);
  EXPECT_EQ(replayed.events.size(), 1u);
}

TEST(JournalTest, JobUidIsMadeOnceAndKeptAcrossReopens) {
  TempDir dir;
  std::string uid;
  {
    std::unique_ptr<Journal> j = MustOpen(dir.path() + "/a");
    ASSERT_NE(j, nullptr);
    uid = j->job_uid();
    EXPECT_EQ(j->replay_stats().job_uid, uid);
  }
  ASSERT_EQ(uid.size(), 32u);
  EXPECT_EQ(uid.find_first_not_of("0123456789abcdef"), std::string::npos) << uid;
  for (int i = 0; i < 3; ++i) {
    std::unique_ptr<Journal> j = MustOpen(dir.path() + "/a");
    ASSERT_NE(j, nullptr);
    EXPECT_EQ(j->job_uid(), uid);
  }
  JournalStats stats;
  ASSERT_TRUE(Journal::Read(dir.path() + "/a", {}, &stats).ok());
  EXPECT_EQ(stats.job_uid, uid);
  // Another journal of the very same job description is another instance.
  std::unique_ptr<Journal> other = MustOpen(dir.path() + "/b");
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->job_uid().size(), 32u);
  EXPECT_NE(other->job_uid(), uid);
}

TEST(JournalTest, AHeaderOverTheRecordLimitIsRefused) {
  TempDir dir;
  JournalHeader h = kHeader;
  h.output_path = std::string((64 << 20) + 1, 'p');
  auto j = Journal::Open(dir.path(), h, {});
  EXPECT_EQ(j.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/journal"));
}

// After a failed fsync the kernel may have dropped the dirty pages: a journal
// that retried and carried on could acknowledge records that are not on disk.
TEST(JournalTest, AFailedWriteOrSyncIsStickyEvenOnceTheDiskRecovers) {
  TempDir dir;
  for (const bool fail_write : {true, false}) {
    SCOPED_TRACE(fail_write ? "write fails" : "fsync fails");
    const std::string sub = dir.path() + (fail_write ? "/write" : "/sync");
    FaultyFileSystem fs;
    {
      auto j = Journal::Open(sub, kHeader, {}, &fs);
      ASSERT_TRUE(j.ok()) << j.status();
      const uint64_t first = (*j)->AppendCommit({1, 1, 1, 0});
      ASSERT_TRUE((*j)->Sync(first).ok());
      if (fail_write) {
        fs.FailAppend(1, ENOSPC, /*partial=*/10);  // a torn frame is left behind
      } else {
        fs.FailSyncs(EIO);
      }
      const absl::Status failed = (*j)->Sync((*j)->AppendCommit({2, 1, 1, 0}));
      ASSERT_FALSE(failed.ok());
      EXPECT_THAT(std::string(failed.message()), HasSubstr(sub + "/journal"));
      fs.FailSyncs(0);
      const int syncs = fs.syncs();
      EXPECT_EQ((*j)->Sync((*j)->AppendCommit({3, 1, 1, 0})), failed);
      EXPECT_EQ((*j)->SyncAll(), failed);
      EXPECT_EQ((*j)->durable_seq(), first);
      EXPECT_EQ(fs.syncs(), syncs);  // never retried
    }
    // What the failed write left is a torn tail; the first commit survives.
    Replayed replayed;
    std::unique_ptr<Journal> j = MustOpen(sub, &replayed);
    ASSERT_NE(j, nullptr);
    ASSERT_GE(replayed.events.size(), 1u);
    ExpectSameCommit(replayed.events[0].c, {1, 1, 1, 0});
    if (fail_write) {
      EXPECT_EQ(replayed.events.size(), 1u);
      EXPECT_EQ(j->replay_stats().truncated_bytes, 10u);
    }
  }
}

}  // namespace
}  // namespace elasticbatch::aimaster
