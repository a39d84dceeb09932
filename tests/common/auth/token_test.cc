#include "common/auth/token.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch::auth {
namespace {

using ::testing::HasSubstr;

const std::string kWorker(64, 'w');
const std::string kAdmin(64, 'a');

TEST(TokenTest, GeneratedTokensAre256RandomBitsInHex) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string t = GenerateToken();
    ASSERT_EQ(t.size(), 64u);
    EXPECT_EQ(t.find_first_not_of("0123456789abcdef"), std::string::npos) << t;
    EXPECT_TRUE(ValidateToken(t, "test").ok());
    seen.insert(t);
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(TokenTest, AFileTokenLosesItsNewlineAndFollowsSymlinks) {
  testing::TempDir dir;
  const std::string token = GenerateToken();
  // Kubernetes mounts a Secret key as a link into a ..data directory.
  testing::WriteFileOrDie(dir.path() + "/..data/token", token + "\n");
  std::filesystem::create_symlink("..data/token", dir.path() + "/token");
  absl::StatusOr<std::string> read = ReadTokenFile(dir.path() + "/token");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, token);
}

TEST(TokenTest, BadTokenFilesAreRefusedNamingTheFile) {
  testing::TempDir dir;
  const std::string short_file = dir.path() + "/short";
  testing::WriteFileOrDie(short_file, "secret\n");
  absl::StatusOr<std::string> read = ReadTokenFile(short_file);
  EXPECT_TRUE(absl::IsInvalidArgument(read.status())) << read.status();
  EXPECT_THAT(read.status().message(), HasSubstr(short_file));

  const std::string spaced = dir.path() + "/spaced";
  testing::WriteFileOrDie(spaced, std::string(20, 'x') + " " + std::string(20, 'y'));
  EXPECT_TRUE(absl::IsInvalidArgument(ReadTokenFile(spaced).status()));

  const std::string empty = dir.path() + "/empty";
  testing::WriteFileOrDie(empty, "\n");
  EXPECT_TRUE(absl::IsInvalidArgument(ReadTokenFile(empty).status()));

  const std::string huge = dir.path() + "/huge";
  testing::WriteFileOrDie(huge, std::string(1 << 20, 'x'));
  EXPECT_TRUE(absl::IsInvalidArgument(ReadTokenFile(huge).status()));

  EXPECT_TRUE(absl::IsNotFound(ReadTokenFile(dir.path() + "/missing").status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(ReadTokenFile(dir.path()).status()));
  // A FIFO would block a reader forever; it is refused at once.
  const std::string fifo = dir.path() + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_TRUE(absl::IsFailedPrecondition(ReadTokenFile(fifo).status()));
}

TEST(TokenTest, AWrittenTokenFileIsTheOwnersAloneAndReadsBack) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/aimaster.token";
  // An existing file readable by all is narrowed before the token goes in.
  testing::WriteFileOrDie(path,
                          "old contents that are longer than the token itself ......");
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  const std::string token = GenerateToken();
  ASSERT_TRUE(WriteTokenFile(path, token).ok());
  struct stat st = {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(testing::ReadFileOrEmpty(path), token + "\n");
  EXPECT_EQ(*ReadTokenFile(path), token);

  // Never through a symlink (it could point anywhere), never into a FIFO or
  // a directory.
  std::filesystem::create_symlink(dir.path() + "/elsewhere", dir.path() + "/link");
  absl::Status link = WriteTokenFile(dir.path() + "/link", token);
  EXPECT_THAT(std::string(link.message()), HasSubstr("symbolic link"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/elsewhere"));
  ASSERT_EQ(mkfifo((dir.path() + "/fifo").c_str(), 0600), 0);
  EXPECT_FALSE(WriteTokenFile(dir.path() + "/fifo", token).ok());
  EXPECT_FALSE(WriteTokenFile(dir.path(), token).ok());
}

TEST(TokenTest, TokensEqualComparesWholeTokens) {
  EXPECT_TRUE(TokensEqual(kWorker, kWorker));
  EXPECT_FALSE(TokensEqual(kWorker.substr(0, 63), kWorker));
  EXPECT_FALSE(TokensEqual(kWorker + "w", kWorker));
  EXPECT_FALSE(TokensEqual("", kWorker));
  std::string last_differs = kWorker;
  last_differs.back() = 'x';
  EXPECT_FALSE(TokensEqual(last_differs, kWorker));
  // A prefix padded with NULs must not pass as the token.
  EXPECT_FALSE(TokensEqual(std::string(64, '\0'), std::string(64, '\0') + "x"));
}

TEST(AuthenticatorTest, RolesFollowTheTokenPresented) {
  Authenticator auth(kWorker, kAdmin);
  ASSERT_TRUE(auth.enabled());
  EXPECT_EQ(auth.RoleOf(BearerHeader(kWorker)), Role::kWorker);
  EXPECT_EQ(auth.RoleOf(BearerHeader(kAdmin)), Role::kAdmin);
  EXPECT_EQ(auth.RoleOf("bearer " + kAdmin),
            Role::kAdmin);  // the scheme is case-insensitive
  EXPECT_EQ(auth.RoleOf(""), Role::kNone);
  EXPECT_EQ(auth.RoleOf(kWorker), Role::kNone);  // no scheme
  EXPECT_EQ(auth.RoleOf("Basic " + kWorker), Role::kNone);
  EXPECT_EQ(auth.RoleOf("Bearer "), Role::kNone);
  EXPECT_EQ(auth.RoleOf(BearerHeader(kWorker + "x")), Role::kNone);
  EXPECT_EQ(auth.RoleOf(BearerHeader(std::string(1 << 20, 'w'))), Role::kNone);
}

TEST(AuthenticatorTest, AWorkerTokenAloneIsAlsoTheAdminToken) {
  Authenticator auth(kWorker, "");
  EXPECT_EQ(auth.RoleOf(BearerHeader(kWorker)), Role::kAdmin);
  EXPECT_EQ(auth.RoleOf(BearerHeader(kAdmin)), Role::kNone);
}

TEST(AuthenticatorTest, WithoutTokensEveryCallerIsAdmin) {
  Authenticator auth("", "");
  EXPECT_FALSE(auth.enabled());
  EXPECT_EQ(auth.RoleOf(""), Role::kAdmin);
}

}  // namespace
}  // namespace elasticbatch::auth
