// A throwaway PKI for TLS tests, made at test time with the openssl command
// (no private key is ever checked in).
//
//   testing::TempDir dir;
//   absl::StatusOr<TestCa> ca = TestCa::Create(dir.path() + "/ca", "Test CA");
//   absl::StatusOr<CertPair> server = ca->Issue(dir.path() + "/server", "master",
//                                               "IP:127.0.0.1,DNS:localhost");
#ifndef ELASTICBATCH_TESTS_TESTING_TEST_PKI_H_
#define ELASTICBATCH_TESTS_TESTING_TEST_PKI_H_

#include <string>

#include "absl/status/statusor.h"

namespace elasticbatch::testing {

// A certificate and its private key, as PEM files.
struct CertPair {
  std::string cert_file;
  std::string key_file;
};

class TestCa {
 public:
  // A self-signed CA (P-256) in `dir` (created): ca.crt, ca.key.
  static absl::StatusOr<TestCa> Create(const std::string& dir, const std::string& name);

  const std::string& cert_file() const { return pair_.cert_file; }

  // A leaf certificate signed by this CA in `dir`: leaf.crt, leaf.key.
  // `alt_names` is the subjectAltName value ("IP:127.0.0.1,DNS:localhost"),
  // empty for none (a client certificate).
  absl::StatusOr<CertPair> Issue(const std::string& dir, const std::string& common_name,
                                 const std::string& alt_names) const;

 private:
  CertPair pair_;
};

}  // namespace elasticbatch::testing

#endif  // ELASTICBATCH_TESTS_TESTING_TEST_PKI_H_
