#include "common/tls.h"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace dagvault {
namespace {

struct Pems {
  std::string ca, cert, key;
};

absl::StatusOr<Pems> LoadPems(const dagvault::v1::TlsFiles& files, const std::string& what) {
  if (files.ca_file().empty() || files.cert_file().empty() || files.key_file().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what,
                     ": TLS needs tls.ca_file, tls.cert_file and tls.key_file (create them with "
                     "`dagvault certs`); plain text needs an explicit --insecure-dev"));
  }
  Pems p;
  ASSIGN_OR_RETURN(p.ca, ReadPemFile(files.ca_file(), "tls.ca_file"));
  ASSIGN_OR_RETURN(p.cert, ReadPemFile(files.cert_file(), "tls.cert_file"));
  ASSIGN_OR_RETURN(p.key, ReadPemFile(files.key_file(), "tls.key_file"));
  return p;
}

std::string NameEntry(X509_NAME* name, int nid) {
  const int index = X509_NAME_get_index_by_NID(name, nid, -1);
  if (index < 0) return "";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

}  // namespace

absl::StatusOr<std::string> ReadPemFile(const std::string& path, const std::string& field) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(field, ": cannot read ", path));
  }
  std::stringstream s;
  s << in.rdbuf();
  if (s.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", path, " is not a PEM file"));
  }
  return s.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const dagvault::v1::TlsFiles& files, bool insecure_dev, const std::string& what) {
  if (insecure_dev) {
    logging::Get("tls")->warn(
        "{}: plain text, no TLS (--insecure-dev): anyone who can reach it can act as any node; "
        "never use this in production",
        what);
    return grpc::InsecureServerCredentials();
  }
  ASSIGN_OR_RETURN(Pems p, LoadPems(files, what));
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = p.ca;
  options.pem_key_cert_pairs.push_back({p.key, p.cert});
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const dagvault::v1::TlsFiles& files, bool insecure_dev, const std::string& what) {
  if (insecure_dev) {
    logging::Get("tls")->warn(
        "{}: plain text, no TLS (--insecure-dev); never use this in production", what);
    return grpc::InsecureChannelCredentials();
  }
  ASSIGN_OR_RETURN(Pems p, LoadPems(files, what));
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = p.ca;
  options.pem_private_key = p.key;
  options.pem_cert_chain = p.cert;
  return grpc::SslCredentials(options);
}

std::string PeerIdentity::Describe() const {
  if (!authenticated) return "an unauthenticated peer";
  return absl::StrCat(common_name, " (", role.empty() ? "no role" : role, ")");
}

absl::StatusOr<PeerIdentity> IdentityOfPem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return absl::ResourceExhaustedError("BIO_new_mem_buf");
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (cert == nullptr) return absl::InvalidArgumentError("the peer's certificate does not parse");
  PeerIdentity id;
  id.authenticated = true;
  X509_NAME* subject = X509_get_subject_name(cert);
  id.common_name = NameEntry(subject, NID_commonName);
  id.role = NameEntry(subject, NID_organizationalUnitName);
  X509_free(cert);
  return id;
}

PeerIdentity PeerOf(const grpc::ServerContext& context) {
  auto auth = context.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) return {};
  for (const auto& pem : auth->FindPropertyValues("x509_pem_cert")) {
    auto id = IdentityOfPem(std::string(pem.data(), pem.size()));
    if (id.ok()) return *id;
  }
  return {};
}

namespace {

class AllowOnlyProcessor final : public grpc::AuthMetadataProcessor {
 public:
  AllowOnlyProcessor(std::string role, std::set<std::string> names)
      : role_(std::move(role)), names_(std::move(names)) {}
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata&, grpc::AuthContext* context, OutputMetadata*,
                       OutputMetadata*) override {
    PeerIdentity peer;
    for (const auto& pem : context->FindPropertyValues("x509_pem_cert")) {
      auto id = IdentityOfPem(std::string(pem.data(), pem.size()));
      if (id.ok()) peer = *id;
    }
    if (peer.authenticated && peer.role == role_ && names_.count(peer.common_name) != 0) {
      return grpc::Status::OK;
    }
    logging::Get("tls")->warn(
        "refused a call from {}: only {} certificates of this deployment's "
        "peers are accepted here",
        peer.Describe(), role_);
    return {grpc::StatusCode::UNAUTHENTICATED,
            absl::StrCat("refused: ", peer.Describe(), " is not one of this node's peers")};
  }

 private:
  const std::string role_;
  const std::set<std::string> names_;
};

}  // namespace

std::shared_ptr<grpc::AuthMetadataProcessor> AllowOnly(std::string role,
                                                       std::set<std::string> names) {
  return std::make_shared<AllowOnlyProcessor>(std::move(role), std::move(names));
}

}  // namespace dagvault
