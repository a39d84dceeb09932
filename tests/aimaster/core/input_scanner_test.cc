// ListSourceFiles: what an input channel holds, in a deterministic order.
#include "aimaster/core/input_scanner.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch::aimaster {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::WriteFileOrDie;

struct Entry {
  std::string path;
  uint64_t size;
  friend bool operator==(const Entry& a, const Entry& b) {
    return a.path == b.path && a.size == b.size;
  }
  friend std::ostream& operator<<(std::ostream& os, const Entry& e) {
    return os << e.path << ":" << e.size;
  }
};

std::vector<Entry> List(const std::string& path) {
  absl::StatusOr<std::vector<SourceFile>> files = ListSourceFiles(path);
  EXPECT_TRUE(files.ok()) << files.status();
  std::vector<Entry> out;
  if (files.ok()) {
    for (const SourceFile& f : *files) out.push_back({f.path, f.size});
  }
  return out;
}

TEST(InputScannerTest, SingleFileYieldsItselfWithAnEmptyName) {
  TempDir dir;
  const std::string file = dir.path() + "/data.jsonl";
  WriteFileOrDie(file, "0123456");
  EXPECT_THAT(List(file), ElementsAre(Entry{"", 7}));
}

TEST(InputScannerTest, SingleEmptyFileIsKept) {
  TempDir dir;
  const std::string file = dir.path() + "/empty";
  WriteFileOrDie(file, "");
  EXPECT_THAT(List(file), ElementsAre(Entry{"", 0}));
}

TEST(InputScannerTest, DirectoryIsListedRecursivelySortedByRelativePath) {
  TempDir dir;
  const std::string root = dir.path() + "/in";
  WriteFileOrDie(root + "/b/2.txt", "22");
  WriteFileOrDie(root + "/a/z/1.txt", "1");
  WriteFileOrDie(root + "/a/0.txt", "000");
  WriteFileOrDie(root + "/c.txt", "cccc");
  WriteFileOrDie(root + "/a.txt", "aaaaa");
  WriteFileOrDie(root + "/a/z/0.txt", "");
  WriteFileOrDie(root + "/B.txt", "BB");
  WriteFileOrDie(root + "/deep/er/and/deeper/x", "xxxxxx");
  // Sorted by the relative path as a byte string ('.' < '/' < upper < lower).
  EXPECT_THAT(
      List(root),
      ElementsAre(Entry{"B.txt", 2}, Entry{"a.txt", 5}, Entry{"a/0.txt", 3},
                  Entry{"a/z/0.txt", 0}, Entry{"a/z/1.txt", 1}, Entry{"b/2.txt", 2},
                  Entry{"c.txt", 4}, Entry{"deep/er/and/deeper/x", 6}));
  // A trailing slash on the root changes nothing.
  EXPECT_EQ(List(root + "/"), List(root));
}

TEST(InputScannerTest, NamesStartingWithDotOrUnderscoreAreSkippedAtEveryLevel) {
  TempDir dir;
  const std::string root = dir.path() + "/in";
  WriteFileOrDie(root + "/part-0", "p0");
  WriteFileOrDie(root + "/.hidden", "h");
  WriteFileOrDie(root + "/_SUCCESS", "");
  WriteFileOrDie(root + "/_manifest.jsonl", "m");
  WriteFileOrDie(root + "/_temporary/part-0.tmp", "tmp");
  WriteFileOrDie(root + "/_temporary/nested/part-1.tmp", "tmp");
  WriteFileOrDie(root + "/.git/objects/abc", "obj");
  WriteFileOrDie(root + "/sub/keep", "kk");
  WriteFileOrDie(root + "/sub/.swp", "s");
  WriteFileOrDie(root + "/sub/_partial", "p");
  WriteFileOrDie(root + "/sub/_tmp/inner/file", "f");
  WriteFileOrDie(root + "/sub/.cache/file", "f");
  // Only the first character counts.
  WriteFileOrDie(root + "/a_b", "ab");
  WriteFileOrDie(root + "/x.", "x");
  WriteFileOrDie(root + "/sub/y_.z", "yz");
  EXPECT_THAT(List(root),
              ElementsAre(Entry{"a_b", 2}, Entry{"part-0", 2}, Entry{"sub/keep", 2},
                          Entry{"sub/y_.z", 2}, Entry{"x.", 1}));
}

TEST(InputScannerTest, EmptyFilesInADirectoryAreKept) {
  TempDir dir;
  WriteFileOrDie(dir.path() + "/a", "");
  WriteFileOrDie(dir.path() + "/b", "1");
  EXPECT_THAT(List(dir.path()), ElementsAre(Entry{"a", 0}, Entry{"b", 1}));
}

TEST(InputScannerTest, EmptyDirectoryYieldsNothing) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() + "/only/dirs/here");
  WriteFileOrDie(dir.path() + "/_SUCCESS", "");
  EXPECT_THAT(List(dir.path()), ::testing::IsEmpty());
}

TEST(InputScannerTest, SymlinkedDirectoriesAreFollowed) {
  TempDir dir;
  WriteFileOrDie(dir.path() + "/real/f", "abc");
  std::filesystem::create_directories(dir.path() + "/in");
  std::filesystem::create_directory_symlink(dir.path() + "/real",
                                            dir.path() + "/in/link");
  EXPECT_THAT(List(dir.path() + "/in"), ElementsAre(Entry{"link/f", 3}));
}

TEST(InputScannerTest, ADanglingSymlinkIsAnErrorNamingIt) {
  TempDir dir;
  WriteFileOrDie(dir.path() + "/in/a", "a");
  std::filesystem::create_symlink(dir.path() + "/nowhere", dir.path() + "/in/m-dangling");
  absl::StatusOr<std::vector<SourceFile>> files = ListSourceFiles(dir.path() + "/in");
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(files.status().message()), HasSubstr("m-dangling"));
  EXPECT_THAT(std::string(files.status().message()), HasSubstr("dangling"));
  // A dangling link as the input itself says so too.
  files = ListSourceFiles(dir.path() + "/in/m-dangling");
  EXPECT_EQ(files.status().code(), absl::StatusCode::kFailedPrecondition);
  // Skipped names are never looked at.
  std::filesystem::remove(dir.path() + "/in/m-dangling");
  std::filesystem::create_symlink(dir.path() + "/nowhere", dir.path() + "/in/_old");
  EXPECT_THAT(List(dir.path() + "/in"), ElementsAre(Entry{"a", 1}));
}

// The review's case: `self -> .` made one 6-byte file 41 shards.
TEST(InputScannerTest, ALinkToItsOwnDirectoryIsALoopNotRepeatedData) {
  TempDir dir;
  WriteFileOrDie(dir.path() + "/in/data", "abcdef");
  std::filesystem::create_directory_symlink(".", dir.path() + "/in/self");
  absl::StatusOr<std::vector<SourceFile>> files = ListSourceFiles(dir.path() + "/in");
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(files.status().message()), HasSubstr("loop"));
  EXPECT_THAT(std::string(files.status().message()), HasSubstr("/in/self -> ."));
}

// `up -> ..` used to scan for a minute and grow to 335 MB.
TEST(InputScannerTest, ALinkToAnAncestorOfTheInputIsALoop) {
  TempDir dir;
  WriteFileOrDie(dir.path() + "/in/sub/data", "abcdef");
  std::filesystem::create_directory_symlink("../..", dir.path() + "/in/sub/up");
  absl::StatusOr<std::vector<SourceFile>> files = ListSourceFiles(dir.path() + "/in");
  ASSERT_FALSE(files.ok());
  EXPECT_THAT(std::string(files.status().message()), HasSubstr("sub/up -> ../.."));
  // Above the input itself, too.
  std::filesystem::remove(dir.path() + "/in/sub/up");
  std::filesystem::create_directory_symlink(dir.path(), dir.path() + "/in/sub/top");
  files = ListSourceFiles(dir.path() + "/in");
  ASSERT_FALSE(files.ok());
  EXPECT_THAT(std::string(files.status().message()), HasSubstr("loop"));
}

TEST(InputScannerTest, SymlinksThatPointAtEachOtherAreAnError) {
  TempDir dir;
  WriteFileOrDie(dir.path() + "/in/data", "d");
  std::filesystem::create_symlink("b", dir.path() + "/in/a");
  std::filesystem::create_symlink("a", dir.path() + "/in/b");
  absl::StatusOr<std::vector<SourceFile>> files = ListSourceFiles(dir.path() + "/in");
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(files.status().message()), HasSubstr("/in/a"));
}

TEST(InputScannerTest, EveryRealFileIsListedOnceUnderItsFirstPath) {
  TempDir dir;
  const std::string in = dir.path() + "/in";
  WriteFileOrDie(in + "/b/data", "0123");
  WriteFileOrDie(in + "/c", "cc");
  std::filesystem::create_symlink(in + "/b/data", in + "/z-link");        // file link
  ASSERT_EQ(link((in + "/c").c_str(), (in + "/a-hardlink").c_str()), 0);  // hard link
  std::filesystem::create_directory_symlink(in + "/b", in + "/y-dir");    // dir link
  std::vector<std::string> duplicates;
  ListOptions options;
  options.duplicates = &duplicates;
  absl::StatusOr<std::vector<SourceFile>> files = ListSourceFiles(in, options);
  ASSERT_TRUE(files.ok()) << files.status();
  std::vector<Entry> got;
  for (const SourceFile& f : *files) got.push_back({f.path, f.size});
  EXPECT_THAT(got, ElementsAre(Entry{"a-hardlink", 2}, Entry{"b/data", 4}));
  EXPECT_THAT(duplicates,
              ::testing::UnorderedElementsAre("c (same file as a-hardlink)",
                                              "y-dir/ (a directory already listed)",
                                              "z-link (same file as b/data)"));
}

TEST(InputScannerTest, SymlinkedFilesOutsideTheInputAreFollowed) {
  TempDir dir;
  WriteFileOrDie(dir.path() + "/elsewhere/f", "abc");
  std::filesystem::create_directories(dir.path() + "/in");
  std::filesystem::create_symlink(dir.path() + "/elsewhere/f", dir.path() + "/in/f");
  EXPECT_THAT(List(dir.path() + "/in"), ElementsAre(Entry{"f", 3}));
}

TEST(InputScannerTest, AListingCanBeCancelled) {
  TempDir dir;
  for (int i = 0; i < 300; ++i) WriteFileOrDie(absl::StrCat(dir.path(), "/in/", i), "x");
  int polls = 0;
  ListOptions options;
  options.cancelled = [&] { return ++polls > 2; };
  absl::StatusOr<std::vector<SourceFile>> files =
      ListSourceFiles(dir.path() + "/in", options);
  EXPECT_EQ(files.status().code(), absl::StatusCode::kCancelled);
}

TEST(InputScannerTest, TooDeepANestingIsAnError) {
  TempDir dir;
  std::string deep = dir.path() + "/in";
  for (int i = 0; i < 5; ++i) deep += "/d";
  WriteFileOrDie(deep + "/f", "x");
  ListOptions options;
  options.max_depth = 3;
  absl::StatusOr<std::vector<SourceFile>> files =
      ListSourceFiles(dir.path() + "/in", options);
  ASSERT_FALSE(files.ok());
  EXPECT_THAT(std::string(files.status().message()), HasSubstr("deeper than 3"));
}

TEST(InputScannerTest, MissingPathIsNotFound) {
  TempDir dir;
  const std::string missing = dir.path() + "/no/such/input";
  absl::StatusOr<std::vector<SourceFile>> files = ListSourceFiles(missing);
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(files.status().message()), HasSubstr(missing));
}

TEST(InputScannerTest, NeitherFileNorDirectoryIsAFailedPrecondition) {
  TempDir dir;
  const std::string fifo = dir.path() + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  absl::StatusOr<std::vector<SourceFile>> files = ListSourceFiles(fifo);
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(files.status().message()), HasSubstr(fifo));
  // Inside a directory, a fifo is an error naming it (reading it would hang).
  WriteFileOrDie(dir.path() + "/data", "d");
  files = ListSourceFiles(dir.path());
  ASSERT_FALSE(files.ok());
  EXPECT_EQ(files.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(files.status().message()), HasSubstr("is a fifo"));
}

TEST(InputScannerTest, UnreadableFileIsPermissionDenied) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads everything";
  TempDir dir;
  const std::string file = dir.path() + "/secret";
  WriteFileOrDie(file, "s");
  ASSERT_EQ(chmod(file.c_str(), 0), 0);
  absl::StatusOr<std::vector<SourceFile>> single = ListSourceFiles(file);
  EXPECT_EQ(single.status().code(), absl::StatusCode::kPermissionDenied);
  absl::StatusOr<std::vector<SourceFile>> in_dir = ListSourceFiles(dir.path());
  EXPECT_EQ(in_dir.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(in_dir.status().message()), HasSubstr(file));
  chmod(file.c_str(), 0644);
}

}  // namespace
}  // namespace elasticbatch::aimaster
