// WriteJobOutputs: the manifest, the dead-letter list and the job's end marker.
#include "aimaster/core/job_outputs.h"

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "aimaster/core/journal.h"
#include "aimaster/core/shard_enumerator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch::aimaster {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ReadFileOrEmpty;
using testing::TempDir;
using testing::WriteFileOrDie;

namespace fs = std::filesystem;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out = absl::StrSplit(text, '\n');
  EXPECT_FALSE(out.empty());
  if (!out.empty()) {
    EXPECT_EQ(out.back(), "") << "the file must end with a newline";
    out.pop_back();
  }
  return out;
}

// Temporary files under `dir` ("x.tmp" or ".x.tmp-<random>").
std::vector<std::string> TempFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if ((name.size() >= 4 && name.substr(name.size() - 4) == ".tmp") ||
        name.find(".tmp-") != std::string::npos) {
      out.push_back(name);
    }
  }
  return out;
}

JobVerdict Verdict(bool succeeded, const std::string& reason) {
  return {"job-a", "0123abcd", succeeded, reason};
}

JournalHeader Header(const ShardEnumerator& shards) {
  JournalHeader h;
  h.layout_fingerprint = shards.fingerprint();
  h.total_shards = shards.shard_count();
  return h;
}

class JobOutputsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // a.jsonl: [0,4) [4,8) [8,10); sub/b.jsonl: [0,4) [4,5)
    absl::StatusOr<ShardEnumerator> e = ShardEnumerator::ForFiles(
        {{"a.jsonl", 10}, {"sub/b.jsonl", 5}}, ShardingMode::kBytes, 4);
    ASSERT_TRUE(e.ok()) << e.status();
    shards_.emplace(*std::move(e));
    out_ = dir_.path() + "/out";
    state_ = dir_.path() + "/state";
    fs::create_directories(out_);
  }

  // Journals the given records as a master would.
  void Journalled(const std::vector<CommitRecord>& commits,
                  const std::vector<QuarantineRecord>& quarantines,
                  const std::string& state = "") {
    auto j = Journal::Open(state.empty() ? state_ : state, Header(*shards_), {});
    ASSERT_TRUE(j.ok()) << j.status();
    for (const CommitRecord& c : commits) (*j)->AppendCommit(c);
    for (const QuarantineRecord& q : quarantines) (*j)->AppendQuarantine(q);
    ASSERT_TRUE((*j)->SyncAll().ok());
  }

  TempDir dir_;
  std::optional<ShardEnumerator> shards_;
  std::string out_;
  std::string state_;
};

TEST_F(JobOutputsTest, SuccessWritesTheManifestThenSuccessAndDropsTheStagingDir) {
  Journalled({{2, 1, 7, 3}, {0, 2, 5, 1}, {4, 1, 0, 0}, {3, 1, 9, 2}}, {});
  WriteFileOrDie(out_ + "/_temporary/part-00001.attempt-1", "partial");
  WriteFileOrDie(out_ + "/part-00000", "published output");
  ASSERT_TRUE(WriteJobOutputs(out_, state_, *shards_, "data", Verdict(true, "")).ok());

  EXPECT_THAT(
      Lines(ReadFileOrEmpty(out_ + "/_manifest.jsonl")),
      ElementsAre(
          R"({"shard":2,"source":"data/a.jsonl","begin":8,"end":10,"unit":"bytes","output":"part-00002","records":7,"attempt":1,"worker":3})",
          R"({"shard":0,"source":"data/a.jsonl","begin":0,"end":4,"unit":"bytes","output":"part-00000","records":5,"attempt":2,"worker":1})",
          R"({"shard":4,"source":"data/sub/b.jsonl","begin":4,"end":5,"unit":"bytes","output":"part-00004","records":0,"attempt":1,"worker":0})",
          R"({"shard":3,"source":"data/sub/b.jsonl","begin":0,"end":4,"unit":"bytes","output":"part-00003","records":9,"attempt":1,"worker":2})"));
  EXPECT_TRUE(fs::exists(out_ + "/_quarantine.jsonl"));
  EXPECT_EQ(ReadFileOrEmpty(out_ + "/_quarantine.jsonl"), "");
  ASSERT_TRUE(fs::exists(out_ + "/_SUCCESS"));
  // The marker names the job instance, so no other job's workers believe it.
  EXPECT_EQ(ReadFileOrEmpty(out_ + "/_SUCCESS"),
            R"({"job_id":"job-a","job_uid":"0123abcd","state":"succeeded","reason":""})"
            "\n");
  EXPECT_EQ(EndMarkerJobUid(out_ + "/_SUCCESS"), "0123abcd");
  EXPECT_FALSE(fs::exists(out_ + "/_FAILED"));
  EXPECT_FALSE(fs::exists(out_ + "/_temporary"));
  // Outputs themselves are untouched.
  EXPECT_EQ(ReadFileOrEmpty(out_ + "/part-00000"), "published output");
  EXPECT_THAT(TempFiles(out_), ::testing::IsEmpty());
}

TEST_F(JobOutputsTest, DuplicateCommitsAppearOnce) {
  // A journal can hold a shard twice (e.g. an adopted commit and a retry).
  Journalled({{1, 1, 7, 0}, {1, 2, 8, 1}}, {});
  ASSERT_TRUE(WriteJobOutputs(out_, state_, *shards_, "data", Verdict(true, "")).ok());
  std::vector<std::string> lines = Lines(ReadFileOrEmpty(out_ + "/_manifest.jsonl"));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr(R"("shard":1,)"));
  EXPECT_THAT(lines[0], HasSubstr(R"("attempt":1,)"));
}

TEST_F(JobOutputsTest, QuarantinedShardsAreListedWithEveryError) {
  Journalled(
      {{0, 1, 4, 0}},
      {{1,
        {"worker 0: bad \"json\"", "line1\nline2\ttab\\", std::string("nul\0x\xff", 6)}},
       {4, {}}});
  ASSERT_TRUE(WriteJobOutputs(out_, state_, *shards_, "in",
                              Verdict(false, "1 shard(s) quarantined"))
                  .ok());
  EXPECT_THAT(
      Lines(ReadFileOrEmpty(out_ + "/_quarantine.jsonl")),
      ElementsAre(
          R"({"shard":1,"source":"in/a.jsonl","begin":4,"end":8,"unit":"bytes","failures":3,"errors":["worker 0: bad \"json\"","line1\nline2\ttab\\","nul\u0000x\ufffd"]})",
          R"({"shard":4,"source":"in/sub/b.jsonl","begin":4,"end":5,"unit":"bytes","failures":0,"errors":[]})"));
  EXPECT_EQ(Lines(ReadFileOrEmpty(out_ + "/_manifest.jsonl")).size(), 1u);
}

TEST_F(JobOutputsTest, FailureWritesTheReasonAndKeepsTheStagingDir) {
  Journalled({{0, 1, 4, 0}}, {});
  WriteFileOrDie(out_ + "/_SUCCESS", "");  // from an earlier run
  WriteFileOrDie(out_ + "/_temporary/x", "partial");
  ASSERT_TRUE(WriteJobOutputs(out_, state_, *shards_, "data",
                              Verdict(false, "stopped: by operator"))
                  .ok());
  EXPECT_EQ(
      ReadFileOrEmpty(out_ + "/_FAILED"),
      R"({"job_id":"job-a","job_uid":"0123abcd","state":"failed","reason":"stopped: by operator"})"
      "\n");
  EXPECT_FALSE(fs::exists(out_ + "/_SUCCESS"));
  EXPECT_TRUE(fs::exists(out_ + "/_temporary/x"));
  EXPECT_EQ(Lines(ReadFileOrEmpty(out_ + "/_manifest.jsonl")).size(), 1u);
  EXPECT_TRUE(fs::exists(out_ + "/_quarantine.jsonl"));

  // A later successful run replaces the failure marker.
  ASSERT_TRUE(WriteJobOutputs(out_, state_, *shards_, "data", Verdict(true, "")).ok());
  EXPECT_FALSE(fs::exists(out_ + "/_FAILED"));
  EXPECT_TRUE(fs::exists(out_ + "/_SUCCESS"));
  EXPECT_FALSE(fs::exists(out_ + "/_temporary"));
}

TEST_F(JobOutputsTest, RecordShardsNameTheChannel) {
  absl::StatusOr<ShardEnumerator> records = ShardEnumerator::ForRecords(25, 10);
  ASSERT_TRUE(records.ok());
  auto j = Journal::Open(state_ + "-records", Header(*records), {});
  ASSERT_TRUE(j.ok());
  (*j)->AppendCommit({2, 1, 5, 0});
  ASSERT_TRUE((*j)->SyncAll().ok());
  ASSERT_TRUE(
      WriteJobOutputs(out_, state_ + "-records", *records, "table", Verdict(true, ""))
          .ok());
  EXPECT_EQ(
      ReadFileOrEmpty(out_ + "/_manifest.jsonl"),
      R"({"shard":2,"source":"table","begin":20,"end":25,"unit":"records","output":"part-00002","records":5,"attempt":1,"worker":0})"
      "\n");
}

TEST_F(JobOutputsTest, SingleFileInputIsNamedByItsChannel) {
  absl::StatusOr<ShardEnumerator> single =
      ShardEnumerator::ForFiles({{"", 9}}, ShardingMode::kBytes, 4);
  ASSERT_TRUE(single.ok());
  auto j = Journal::Open(state_ + "-single", Header(*single), {});
  ASSERT_TRUE(j.ok());
  (*j)->AppendCommit({2, 1, 1, 0});
  ASSERT_TRUE((*j)->SyncAll().ok());
  ASSERT_TRUE(
      WriteJobOutputs(out_, state_ + "-single", *single, "data", Verdict(true, "")).ok());
  EXPECT_THAT(ReadFileOrEmpty(out_ + "/_manifest.jsonl"),
              HasSubstr(R"("source":"data","begin":8,"end":9,)"));
}

TEST_F(JobOutputsTest, EmptyJournalWritesEmptyListings) {
  Journalled({}, {});
  ASSERT_TRUE(
      WriteJobOutputs(out_, state_, *shards_, "data", Verdict(false, "nothing done"))
          .ok());
  EXPECT_TRUE(fs::exists(out_ + "/_manifest.jsonl"));
  EXPECT_EQ(ReadFileOrEmpty(out_ + "/_manifest.jsonl"), "");
  EXPECT_THAT(ReadFileOrEmpty(out_ + "/_FAILED"),
              HasSubstr(R"("reason":"nothing done")"));
}

TEST_F(JobOutputsTest, MissingJournalIsAnErrorAndWritesNothing) {
  absl::Status s = WriteJobOutputs(out_, dir_.path() + "/no-state", *shards_, "data",
                                   Verdict(true, ""));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(out_ + "/_SUCCESS"));
  EXPECT_FALSE(fs::exists(out_ + "/_manifest.jsonl"));
  EXPECT_THAT(TempFiles(out_), ::testing::IsEmpty());
}

TEST_F(JobOutputsTest, MissingOutputDirIsAnError) {
  Journalled({{0, 1, 4, 0}}, {});
  absl::Status s = WriteJobOutputs(dir_.path() + "/no/such/dir", state_, *shards_, "data",
                                   Verdict(true, ""));
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(fs::exists(dir_.path() + "/no/such/dir/_SUCCESS"));
}

TEST(WriteFileAtomicallyTest, WritesAndReplacesWithoutLeavingTemporaries) {
  TempDir dir;
  const std::string path = dir.path() + "/file";
  ASSERT_TRUE(WriteFileAtomically(path, "first").ok());
  EXPECT_EQ(ReadFileOrEmpty(path), "first");
  ASSERT_TRUE(WriteFileAtomically(path, std::string("sec\0ond", 7)).ok());
  EXPECT_EQ(ReadFileOrEmpty(path), std::string("sec\0ond", 7));
  ASSERT_TRUE(WriteFileAtomically(path, "").ok());
  EXPECT_EQ(ReadFileOrEmpty(path), "");
  EXPECT_TRUE(fs::exists(path));
  EXPECT_THAT(TempFiles(dir.path()), ::testing::IsEmpty());
  EXPECT_FALSE(WriteFileAtomically(dir.path() + "/missing/file", "x").ok());
}

// Issue 10, item 13: a worker (which can write the output channel) planted
// `_manifest.jsonl.tmp -> victim` and the master overwrote the victim.
TEST_F(JobOutputsTest, LinksPlantedInTheOutputChannelAreNeverWrittenThrough) {
  Journalled({{0, 1, 4, 0}, {1, 1, 4, 0}, {2, 1, 2, 0}, {3, 1, 4, 0}, {4, 1, 1, 0}}, {});
  const std::string victim = dir_.path() + "/victim";
  WriteFileOrDie(victim, "precious");
  for (const char* name : {"_manifest.jsonl.tmp", "_quarantine.jsonl.tmp", "_SUCCESS.tmp",
                           "_FAILED.tmp", "_quarantine.jsonl"}) {
    fs::create_symlink(victim, out_ + "/" + name);
  }
  ASSERT_TRUE(WriteJobOutputs(out_, state_, *shards_, "data", Verdict(true, "")).ok());
  EXPECT_EQ(ReadFileOrEmpty(victim), "precious");
  // The link at a final name was replaced by the real file, not written through.
  EXPECT_FALSE(fs::is_symlink(out_ + "/_quarantine.jsonl"));
  EXPECT_TRUE(fs::is_regular_file(out_ + "/_SUCCESS"));
  EXPECT_EQ(Lines(ReadFileOrEmpty(out_ + "/_manifest.jsonl")).size(), 5u);
}

// Issue 10, item 6: a new job's workers ended 0.6 s after the master was
// killed because the output held an earlier job's _SUCCESS.
TEST(PrepareOutputChannelTest, AnotherJobsMarkerIsRefusedAndOurOwnCleared) {
  TempDir dir;
  const std::string out = dir.path();
  // An earlier job's verdict (an old-style empty marker names no job).
  WriteFileOrDie(out + "/_SUCCESS", "");
  absl::Status s = PrepareOutputChannel(out, "new-uid", /*resumed=*/false);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("_SUCCESS"));
  WriteFileOrDie(out + "/_SUCCESS", R"({"job_id":"j","job_uid":"old-uid"})");
  s = PrepareOutputChannel(out, "new-uid", /*resumed=*/true);
  EXPECT_THAT(std::string(s.message()), HasSubstr("old-uid"));
  EXPECT_TRUE(fs::exists(out + "/_SUCCESS"));  // refused, not removed
  // This instance's own verdict from before a restart is cleared.
  fs::remove(out + "/_SUCCESS");
  WriteFileOrDie(out + "/_FAILED", R"({"job_id":"j","job_uid":"new-uid"})");
  EXPECT_TRUE(PrepareOutputChannel(out, "new-uid", /*resumed=*/true).ok());
  EXPECT_FALSE(fs::exists(out + "/_FAILED"));
  // A link planted as a marker is not followed to find a uid.
  WriteFileOrDie(dir.path() + "-elsewhere", R"({"job_uid":"new-uid"})");
  fs::create_symlink(dir.path() + "-elsewhere", out + "/_SUCCESS");
  EXPECT_FALSE(PrepareOutputChannel(out, "new-uid", true).ok());
  fs::remove(dir.path() + "-elsewhere");
}

TEST(PrepareOutputChannelTest, ANewJobRefusesAnOutputHoldingResults) {
  TempDir dir;
  WriteFileOrDie(dir.path() + "/_temporary/x", "staging");
  WriteFileOrDie(dir.path() + "/_state/journal", "state");
  WriteFileOrDie(dir.path() + "/notes.txt", "user file");
  EXPECT_TRUE(PrepareOutputChannel(dir.path(), "uid", /*resumed=*/false).ok());
  WriteFileOrDie(dir.path() + "/part-00007", "old output");
  absl::Status s = PrepareOutputChannel(dir.path(), "uid", /*resumed=*/false);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("part-00007"));
  // A resumed job's own part files are expected.
  EXPECT_TRUE(PrepareOutputChannel(dir.path(), "uid", /*resumed=*/true).ok());
}

TEST(ProbeWritableDirectoryTest, ProbesWithoutFollowingLinksOrLeavingFiles) {
  TempDir dir;
  ASSERT_TRUE(ProbeWritableDirectory(dir.path()).ok());
  EXPECT_TRUE(fs::is_empty(dir.path()));
  absl::Status missing = ProbeWritableDirectory(dir.path() + "/missing");
  EXPECT_EQ(missing.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(missing.message()), HasSubstr(dir.path() + "/missing"));
}

TEST(JsonQuoteTest, EscapesWhatJsonRequires) {
  EXPECT_EQ(JsonQuote(""), R"("")");
  EXPECT_EQ(JsonQuote("plain text"), R"("plain text")");
  EXPECT_EQ(JsonQuote("say \"hi\""), R"("say \"hi\"")");
  EXPECT_EQ(JsonQuote("C:\\path\\"), R"("C:\\path\\")");
  EXPECT_EQ(JsonQuote("a\nb\rc\td"), R"("a\nb\rc\td")");
  EXPECT_EQ(JsonQuote(std::string("\0", 1)), R"("\u0000")");
  EXPECT_EQ(JsonQuote("\x01\x08\x0b\x0c\x1f"), R"("\u0001\u0008\u000b\u000c\u001f")");
  // Everything else passes through: '/', DEL and UTF-8.
  EXPECT_EQ(JsonQuote("a/b\x7f"), "\"a/b\x7f\"");
  EXPECT_EQ(JsonQuote("caf\xc3\xa9 \xe2\x9c\x93"), "\"caf\xc3\xa9 \xe2\x9c\x93\"");
  EXPECT_EQ(JsonQuote(" !#~"), R"(" !#~")");
  EXPECT_EQ(JsonQuote("\xf0\x9f\x98\x80|\xf4\x8f\xbf\xbf|\xed\x9f\xbf|\xc2\x80"),
            "\"\xf0\x9f\x98\x80|\xf4\x8f\xbf\xbf|\xed\x9f\xbf|\xc2\x80\"");
}

TEST(JsonQuoteTest, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  // JSON text must be UTF-8; error messages and file names may be anything.
  EXPECT_EQ(JsonQuote("\xff"), R"("\ufffd")");
  EXPECT_EQ(JsonQuote("a\xc3"), R"("a\ufffd")");            // truncated at the end
  EXPECT_EQ(JsonQuote("\xe2\x9cx"), R"("\ufffd\ufffdx")");  // truncated in the middle
  EXPECT_EQ(JsonQuote("\xc0\xaf"), R"("\ufffd\ufffd")");    // overlong '/'
  EXPECT_EQ(JsonQuote("\xe0\x80\xaf"), R"("\ufffd\ufffd\ufffd")");  // overlong
  EXPECT_EQ(JsonQuote("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");  // a surrogate
  EXPECT_EQ(JsonQuote("\xf4\x90\x80\x80"),
            R"("\ufffd\ufffd\ufffd\ufffd")");  // > U+10FFFF
  EXPECT_EQ(JsonQuote("\x80ok\xc3\xa9"), "\"\\ufffdok\xc3\xa9\"");
}

}  // namespace
}  // namespace elasticbatch::aimaster
