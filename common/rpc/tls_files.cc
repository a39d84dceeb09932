#include "common/rpc/tls_files.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace elasticbatch::rpc {
namespace {

constexpr std::streamsize kMaxPemBytes = 4 << 20;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

absl::Status Bad(const std::string& file, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": ", why));
}

// OpenSSL's last error as text, and the error queue cleared.
std::string OpenSslError() {
  const unsigned long e = ERR_peek_last_error();
  char buf[256] = {0};
  if (e != 0) ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return e != 0 ? std::string(buf) : std::string("malformed");
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Bad(path, "cannot read");
  std::string data(kMaxPemBytes + 1, '\0');
  in.read(data.data(), kMaxPemBytes + 1);
  if (in.bad()) return Bad(path, "cannot read");
  data.resize(static_cast<size_t>(in.gcount()));
  if (data.size() > static_cast<size_t>(kMaxPemBytes)) {
    return Bad(path, absl::StrCat("larger than ", kMaxPemBytes, " bytes"));
  }
  return data;
}

absl::StatusOr<std::vector<X509Ptr>> ReadCertificates(const std::string& path) {
  absl::StatusOr<std::string> pem = ReadSmallFile(path);
  if (!pem.ok()) return pem.status();
  BioPtr bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  std::vector<X509Ptr> certs;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(x);
  }
  ERR_clear_error();  // the end of the data reads as an error
  if (certs.empty()) return Bad(path, "no PEM certificate");
  return certs;
}

absl::Time FromAsn1(const ASN1_TIME* t) {
  struct tm tm = {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return absl::InfinitePast();
  return absl::FromTM(tm, absl::UTCTimeZone());
}

std::string Subject(X509* cert) {
  BioPtr out(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(out.get(), X509_get_subject_name(cert), 0, XN_FLAG_ONELINE);
  char* data = nullptr;
  const long n = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string AltNames(X509* cert) {
  const int at = X509_get_ext_by_NID(cert, NID_subject_alt_name, -1);
  if (at < 0) return "";
  X509_EXTENSION* ext = X509_get_ext(cert, at);
  BioPtr out(BIO_new(BIO_s_mem()));
  if (X509V3_EXT_print(out.get(), ext, 0, 0) != 1) {
    ERR_clear_error();
    return "";
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string Fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(cert, EVP_sha256(), md, &n) != 1) {
    ERR_clear_error();
    return "";
  }
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(md), n));
}

}  // namespace

std::string CertificateSummary::Describe() const {
  return absl::StrCat(
      subject, subject_alt_names.empty() ? "" : " (", subject_alt_names,
      subject_alt_names.empty() ? "" : ")", ", valid until ",
      absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", not_after, absl::UTCTimeZone()),
      ", sha256 ", sha256.substr(0, 16));
}

absl::StatusOr<CertificateSummary> CheckServerCertificate(const std::string& cert_file,
                                                          const std::string& key_file,
                                                          absl::Time now) {
  absl::StatusOr<std::vector<X509Ptr>> chain = ReadCertificates(cert_file);
  if (!chain.ok()) return chain.status();
  X509* leaf = chain->front().get();

  absl::StatusOr<std::string> key_pem = ReadSmallFile(key_file);
  if (!key_pem.ok()) return key_pem.status();
  BioPtr bio(BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size())));
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return Bad(key_file,
               absl::StrCat("no unencrypted PEM private key (", OpenSslError(), ")"));
  }
  if (X509_check_private_key(leaf, key.get()) != 1) {
    ERR_clear_error();
    return Bad(key_file,
               absl::StrCat("does not belong to the certificate in ", cert_file));
  }

  CertificateSummary summary;
  summary.subject = Subject(leaf);
  summary.subject_alt_names = AltNames(leaf);
  summary.not_before = FromAsn1(X509_get0_notBefore(leaf));
  summary.not_after = FromAsn1(X509_get0_notAfter(leaf));
  summary.sha256 = Fingerprint(leaf);
  const auto when = [](absl::Time t) {
    return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", t, absl::UTCTimeZone());
  };
  if (now >= summary.not_after) {
    return Bad(cert_file,
               absl::StrCat("the certificate expired on ", when(summary.not_after)));
  }
  if (now < summary.not_before) {
    return Bad(cert_file, absl::StrCat("the certificate is valid only from ",
                                       when(summary.not_before)));
  }
  return summary;
}

absl::StatusOr<int> CheckCaFile(const std::string& ca_file) {
  absl::StatusOr<std::vector<X509Ptr>> certs = ReadCertificates(ca_file);
  if (!certs.ok()) return certs.status();
  return static_cast<int>(certs->size());
}

}  // namespace elasticbatch::rpc
