// Scratch files for tests: a self-removing temporary directory and whole-file
// reads and writes that either work or end the test binary.
//
//   testing::TempDir dir;
//   testing::WriteFileOrDie(dir.path() + "/in/a.txt", "x\n");
//   EXPECT_EQ(testing::ReadFileOrEmpty(dir.path() + "/in/a.txt"), "x\n");
#ifndef ELASTICBATCH_TESTS_TESTING_TEMP_FILES_H_
#define ELASTICBATCH_TESTS_TESTING_TEMP_FILES_H_

#include <string>

namespace elasticbatch::testing {

// A fresh empty directory under $TMPDIR (default /tmp), removed with
// everything in it by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Reads a whole file; empty when it does not exist.
std::string ReadFileOrEmpty(const std::string& path);

// Writes a whole file, creating parent directories; aborts on failure (a
// test that cannot write its input has nothing to test).
void WriteFileOrDie(const std::string& path, const std::string& content);

}  // namespace elasticbatch::testing

#endif  // ELASTICBATCH_TESTS_TESTING_TEMP_FILES_H_
