// The POSIX file system under the journal: what it refuses, and that errors
// are errors.
#include "aimaster/core/file_system.h"

#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch::aimaster {
namespace {

using ::testing::HasSubstr;
using testing::ReadFileOrEmpty;
using testing::TempDir;
using testing::WriteFileOrDie;

std::string ReadAll(JournalFile& f) {
  std::string out;
  char buf[3];  // small: many reads
  while (true) {
    absl::StatusOr<size_t> n = f.Read(buf, sizeof(buf));
    EXPECT_TRUE(n.ok()) << n.status();
    if (!n.ok() || *n == 0) return out;
    out.append(buf, *n);
  }
}

TEST(FileSystemTest, AppendReadTruncateAndSize) {
  TempDir dir;
  FileSystem* fs = FileSystem::Default();
  const std::string path = dir.path() + "/journal";
  {
    auto f = fs->OpenForAppend(path);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(*(*f)->Size(), 0u);
    ASSERT_TRUE((*f)->Append("hello world").ok());
    ASSERT_TRUE((*f)->Sync().ok());
    EXPECT_EQ(*(*f)->Size(), 11u);
  }
  auto f = fs->OpenForAppend(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(ReadAll(**f), "hello world");
  // After a truncation, appends land at the new end.
  ASSERT_TRUE((*f)->Truncate(5).ok());
  ASSERT_TRUE((*f)->Append(", again").ok());
  EXPECT_EQ(*(*f)->Size(), 12u);
  EXPECT_EQ(ReadFileOrEmpty(path), "hello, again");

  auto r = fs->OpenForRead(path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadAll(**r), "hello, again");
  EXPECT_FALSE((*r)->Append("x").ok());  // read-only
}

TEST(FileSystemTest, OpenForReadOfAMissingFileIsNotFound) {
  TempDir dir;
  auto f = FileSystem::Default()->OpenForRead(dir.path() + "/nothing");
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr(dir.path() + "/nothing"));
}

TEST(FileSystemTest, SymlinksAreRefusedNotFollowed) {
  TempDir dir;
  FileSystem* fs = FileSystem::Default();
  WriteFileOrDie(dir.path() + "/victim", "precious");
  std::filesystem::create_symlink(dir.path() + "/victim", dir.path() + "/link");
  std::filesystem::create_symlink(dir.path() + "/new", dir.path() + "/dangling");
  for (const std::string name : {"link", "dangling"}) {
    SCOPED_TRACE(name);
    const std::string path = dir.path() + "/" + name;
    auto a = fs->OpenForAppend(path);
    EXPECT_EQ(a.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(a.status().message()), HasSubstr("symbolic link"));
    EXPECT_THAT(std::string(a.status().message()), HasSubstr(path));
    EXPECT_EQ(fs->OpenForRead(path).status().code(),
              absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(fs->LockFile(path).status().code(), absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_EQ(ReadFileOrEmpty(dir.path() + "/victim"), "precious");
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/new"));
}

TEST(FileSystemTest, AFifoIsRefusedWithoutBlocking) {
  TempDir dir;
  const std::string path = dir.path() + "/fifo";
  ASSERT_EQ(mkfifo(path.c_str(), 0644), 0);
  FileSystem* fs = FileSystem::Default();
  auto r = fs->OpenForRead(path);  // a blocking open would hang here
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("not a regular file"));
  EXPECT_EQ(fs->OpenForAppend(path).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(fs->LockFile(path).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(FileSystemTest, ALockIsExclusiveUntilReleased) {
  TempDir dir;
  FileSystem* fs = FileSystem::Default();
  const std::string path = dir.path() + "/LOCK";
  auto first = fs->LockFile(path);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = fs->LockFile(path);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr(path));
  first->reset();
  EXPECT_TRUE(fs->LockFile(path).ok());
}

TEST(FileSystemTest, CreateDirMakesParentsAndAcceptsWhatExists) {
  TempDir dir;
  FileSystem* fs = FileSystem::Default();
  ASSERT_TRUE(fs->CreateDir(dir.path() + "/a/b/c/").ok());
  EXPECT_TRUE(std::filesystem::is_directory(dir.path() + "/a/b/c"));
  EXPECT_TRUE(fs->CreateDir(dir.path() + "/a/b/c").ok());
  EXPECT_TRUE(fs->CreateDir(dir.path()).ok());
  EXPECT_TRUE(fs->SyncDir(dir.path() + "/a").ok());

  WriteFileOrDie(dir.path() + "/file", "x");
  absl::Status s = fs->CreateDir(dir.path() + "/file/sub");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr(dir.path() + "/file/sub"));
  EXPECT_EQ(fs->CreateDir(dir.path() + "/file").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(fs->SyncDir(dir.path() + "/missing").ok());
}

}  // namespace
}  // namespace elasticbatch::aimaster
