// The master's TLS files, checked with OpenSSL before gRPC serves them: gRPC
// itself would start with unreadable or mismatched files and fail every
// handshake, which a worker can only report as "handshake failed".
//
//   absl::StatusOr<CertificateSummary> s = CheckServerCertificate(cert, key, now);
//   spdlog::info("TLS: {}", s->Describe());
//
// Thread-safe: plain functions.
#ifndef ELASTICBATCH_COMMON_RPC_TLS_FILES_H_
#define ELASTICBATCH_COMMON_RPC_TLS_FILES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace elasticbatch::rpc {

// What the leaf certificate of a chain says.
struct CertificateSummary {
  std::string subject;            // one-line distinguished name
  std::string subject_alt_names;  // "DNS:a, IP Address:1.2.3.4", or empty
  absl::Time not_before;
  absl::Time not_after;
  std::string sha256;  // fingerprint of the DER certificate, hex
  std::string Describe() const;
};

// Checks that `cert_file` holds a PEM certificate chain, `key_file` a PEM
// private key that belongs to its first certificate, and that the certificate
// is valid at `now`. INVALID_ARGUMENT naming the file and the problem.
absl::StatusOr<CertificateSummary> CheckServerCertificate(const std::string& cert_file,
                                                          const std::string& key_file,
                                                          absl::Time now);

// Checks that `ca_file` holds at least one PEM certificate; returns how many.
absl::StatusOr<int> CheckCaFile(const std::string& ca_file);

}  // namespace elasticbatch::rpc

#endif  // ELASTICBATCH_COMMON_RPC_TLS_FILES_H_
