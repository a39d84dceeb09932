#include "tests/testing/test_pki.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_files.h"

namespace elasticbatch::testing {
namespace {

absl::Status Openssl(std::vector<std::string> args) {
  args.insert(args.begin(), "openssl");
  const ProcessResult r = RunProcess(args, absl::Seconds(120));
  if (r.exit_code != 0) {
    return absl::InternalError(
        absl::StrCat("openssl ", args[1], " failed (exit ", r.exit_code, "): ", r.err));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TestCa> TestCa::Create(const std::string& dir, const std::string& name) {
  std::filesystem::create_directories(dir);
  TestCa ca;
  ca.pair_ = {dir + "/ca.crt", dir + "/ca.key"};
  if (absl::Status s = Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt",
                                "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                                "-subj", "/CN=" + name, "-keyout", ca.pair_.key_file,
                                "-out", ca.pair_.cert_file});
      !s.ok()) {
    return s;
  }
  return ca;
}

absl::StatusOr<CertPair> TestCa::Issue(const std::string& dir,
                                       const std::string& common_name,
                                       const std::string& alt_names) const {
  std::filesystem::create_directories(dir);
  const CertPair leaf{dir + "/leaf.crt", dir + "/leaf.key"};
  const std::string csr = dir + "/leaf.csr";
  if (absl::Status s =
          Openssl({"req", "-new", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
                   "/CN=" + common_name, "-keyout", leaf.key_file, "-out", csr});
      !s.ok()) {
    return s;
  }
  const std::string extensions = dir + "/leaf.ext";
  WriteFileOrDie(
      extensions,
      absl::StrCat("basicConstraints=CA:FALSE\n",
                   alt_names.empty() ? "" : "subjectAltName=" + alt_names + "\n"));
  if (absl::Status s = Openssl({"x509", "-req", "-in", csr, "-CA", pair_.cert_file,
                                "-CAkey", pair_.key_file, "-CAcreateserial", "-days", "2",
                                "-extfile", extensions, "-out", leaf.cert_file});
      !s.ok()) {
    return s;
  }
  return leaf;
}

}  // namespace elasticbatch::testing
