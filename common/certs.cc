#include "common/certs.h"

#include <arpa/inet.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/evp.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/tls.h"

namespace dagvault {
namespace {

struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

absl::Status OpenSslError(const std::string& what) {
  const unsigned long code = ERR_get_error();
  char buf[256] = {};
  ERR_error_string_n(code, buf, sizeof(buf));
  return absl::InternalError(absl::StrCat(what, ": ", buf));
}

absl::StatusOr<EvpPkeyPtr> NewKey() {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return OpenSslError("generating a P-256 key");
  return key;
}

std::string ToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string ToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

absl::Status WriteKey(const std::string& path, EVP_PKEY* key) {
  // Created 0600 before a byte of the key is written.
  const mode_t old = ::umask(0077);
  absl::Status s = WriteFileAtomically(path, ToPem(key), 0600);
  ::umask(old);
  RETURN_IF_ERROR(s);
  if (::chmod(path.c_str(), 0600) != 0) return ErrnoToStatus(errno, "chmod", path);
  return absl::OkStatus();
}

absl::StatusOr<X509Ptr> LoadCert(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadPemFile(path, "CA certificate"));
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return absl::InvalidArgumentError(absl::StrCat(path, ": not a certificate"));
  return cert;
}

absl::StatusOr<EvpPkeyPtr> LoadKey(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadPemFile(path, "CA key"));
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return absl::InvalidArgumentError(absl::StrCat(path, ": not a private key"));
  return key;
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return OpenSslError(absl::StrCat("extension ", OBJ_nid2sn(nid), "=", value));
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return OpenSslError("X509_add_ext");
  return absl::OkStatus();
}

// A certificate for `key` named CN=name, OU=role, O=dagvault, valid for
// `days`, without extensions or signature yet.
absl::StatusOr<X509Ptr> NewCert(EVP_PKEY* key, const std::string& name, const std::string& role,
                                int days) {
  X509Ptr cert(X509_new());
  if (!cert) return OpenSslError("X509_new");
  X509_set_version(cert.get(), 2);
  // A random 127-bit serial, as RFC 5280 recommends.
  std::unique_ptr<BIGNUM, decltype(&BN_free)> serial(BN_new(), &BN_free);
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return OpenSslError("serial number");
  }
  // A day in the past: a node whose clock is behind the issuing machine's
  // (a step of an hour, a VM resumed) must still accept a certificate
  // issued just now. A minute was not enough: the fault matrix's clock-1h
  // cells cut the coordinator off from every agent.
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -86400);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86400);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  auto add = [&](const char* field, const std::string& value) {
    X509_NAME_add_entry_by_txt(subject, field, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1, 0);
  };
  add("O", "dagvault");
  add("OU", role);
  add("CN", name);
  if (X509_set_pubkey(cert.get(), key) != 1) return OpenSslError("X509_set_pubkey");
  return cert;
}

bool IsIpAddress(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  }
  return true;
}

}  // namespace

absl::Status CreateCa(const CaRequest& request) {
  const std::string cert_path = JoinPath(request.dir, "ca.crt");
  const std::string key_path = JoinPath(request.dir, "ca.key");
  if (!request.force && (PathExists(cert_path) || PathExists(key_path))) {
    return absl::AlreadyExistsError(
        absl::StrCat(request.dir,
                     " already holds a CA (ca.crt, ca.key); replacing it means "
                     "reissuing every certificate: add --force to do so"));
  }
  RETURN_IF_ERROR(CreateDirectories(request.dir));
  ASSIGN_OR_RETURN(EvpPkeyPtr key, NewKey());
  ASSIGN_OR_RETURN(X509Ptr cert,
                   NewCert(key.get(), absl::StrCat(request.deployment, " CA"), "ca", request.days));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  RETURN_IF_ERROR(
      AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  RETURN_IF_ERROR(
      AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return OpenSslError("signing the CA");
  RETURN_IF_ERROR(WriteKey(key_path, key.get()));
  return WriteFileAtomically(cert_path, ToPem(cert.get()));
}

absl::Status IssueCertificate(const CertRequest& request) {
  if (!ValidName(request.name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--name \"", request.name, "\": use 1 to 64 letters, digits, '-', '_' or '.'"));
  }
  if (request.role != kRoleNode && request.role != kRoleCoordinator && request.role != kRoleAdmin &&
      request.role != kRoleOperator && request.role != kRoleViewer) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--role \"", request.role, "\": must be node, coordinator, admin, operator or viewer"));
  }
  if (request.name == "ca") {
    return absl::InvalidArgumentError("--name ca: that is the CA's own file name");
  }
  ASSIGN_OR_RETURN(X509Ptr ca, LoadCert(JoinPath(request.dir, "ca.crt")));
  ASSIGN_OR_RETURN(EvpPkeyPtr ca_key, LoadKey(JoinPath(request.dir, "ca.key")));
  ASSIGN_OR_RETURN(EvpPkeyPtr key, NewKey());
  ASSIGN_OR_RETURN(X509Ptr cert, NewCert(key.get(), request.name, request.role, request.days));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.get()));

  // Only the names the operator gives, besides the certificate's own: the
  // machine that issues it is usually not the one that will present it
  // (issue 15).
  std::vector<std::string> sans = {absl::StrCat("DNS:", request.name)};
  for (const auto& san : request.sans) {
    const std::string entry = absl::StrCat(IsIpAddress(san) ? "IP:" : "DNS:", san);
    if (std::find(sans.begin(), sans.end(), entry) == sans.end()) sans.push_back(entry);
  }
  RETURN_IF_ERROR(AddExtension(cert.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(
      AddExtension(cert.get(), ca.get(), NID_key_usage, "critical,digitalSignature,keyAgreement"));
  // Every role both serves and connects: mailstored nodes replicate to
  // each other, and the coordinator and agents are each a client and a
  // server of someone.
  RETURN_IF_ERROR(AddExtension(cert.get(), ca.get(), NID_ext_key_usage, "serverAuth,clientAuth"));
  RETURN_IF_ERROR(
      AddExtension(cert.get(), ca.get(), NID_subject_alt_name, absl::StrJoin(sans, ",")));
  RETURN_IF_ERROR(AddExtension(cert.get(), ca.get(), NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(AddExtension(cert.get(), ca.get(), NID_authority_key_identifier, "keyid:always"));
  if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) == 0) {
    return OpenSslError("signing the certificate");
  }
  RETURN_IF_ERROR(WriteKey(JoinPath(request.dir, absl::StrCat(request.name, ".key")), key.get()));
  return WriteFileAtomically(JoinPath(request.dir, absl::StrCat(request.name, ".crt")),
                             ToPem(cert.get()));
}

dagvault::v1::TlsFiles CertificateFiles(const std::string& dir, const std::string& name) {
  dagvault::v1::TlsFiles files;
  files.set_ca_file(JoinPath(dir, "ca.crt"));
  files.set_cert_file(JoinPath(dir, name + ".crt"));
  files.set_key_file(JoinPath(dir, name + ".key"));
  return files;
}

}  // namespace dagvault

namespace dagvault {

absl::StatusOr<absl::Time> CertificateNotAfter(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadFileToString(path));
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return absl::InvalidArgumentError(absl::StrCat(path, ": not a PEM certificate"));
  struct tm t {};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &t) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": its notAfter does not parse"));
  }
  return absl::FromTM(t, absl::UTCTimeZone());
}

}  // namespace dagvault
