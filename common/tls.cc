#include "common/tls.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/rate_limited_warning.h"
#include "common/status_macros.h"

namespace dagvault {
namespace {}  // namespace

absl::StatusOr<TlsPems> LoadTlsPems(const dagvault::v1::TlsFiles& files, const std::string& what) {
  if (files.ca_file().empty() || files.cert_file().empty() || files.key_file().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what,
                     ": TLS needs tls.ca_file, tls.cert_file and tls.key_file (create them with "
                     "`dagvault certs`); plain text needs an explicit --insecure-dev"));
  }
  TlsPems p;
  ASSIGN_OR_RETURN(p.ca, ReadPemFile(files.ca_file(), "tls.ca_file"));
  ASSIGN_OR_RETURN(p.cert, ReadPemFile(files.cert_file(), "tls.cert_file"));
  ASSIGN_OR_RETURN(p.key, ReadPemFile(files.key_file(), "tls.key_file"));
  return p;
}

namespace {

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
  ASSIGN_OR_RETURN(TlsPems p, LoadTlsPems(files, what));
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = p.ca;
  options.pem_key_cert_pairs.push_back({p.key, p.cert});
  return grpc::SslServerCredentials(options);
}

namespace {

// Runs after the handshake has verified the server's chain against the
// deployment CA, before the connection carries any call.
class PinnedPeerVerifier final : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit PinnedPeerVerifier(ExpectedPeer expected) : expected_(std::move(expected)) {}

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)>, grpc::Status* sync_status) override {
    // A custom verifier replaces gRPC's host name check: keep it first.
    // It is synchronous, so its callback is never called.
    grpc::Status host;
    const auto never_called = [](grpc::Status) {};
    if (!host_name_.Verify(request, never_called, &host) || !host.ok()) {
      *sync_status = host.ok() ? grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                              "the host name check did not complete")
                               : host;
      return true;
    }
    const grpc::string_ref pem = request->peer_cert();
    const grpc::string_ref target = request->target_name();
    absl::StatusOr<PeerIdentity> peer = IdentityOfPem(std::string(pem.data(), pem.size()));
    absl::Status checked =
        peer.ok() ? CheckPeer(*peer, expected_, absl::string_view(target.data(), target.size()))
                  : peer.status();
    if (!checked.ok()) {
      // A daemon retries a refused peer every second or so: once a minute
      // is enough in its log.
      refusals_.Warn(std::string(checked.message()));
      *sync_status =
          grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(checked.message()));
    } else {
      *sync_status = grpc::Status::OK;
    }
    return true;
  }

  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  const ExpectedPeer expected_;
  grpc::experimental::HostNameCertificateVerifier host_name_;
  RateLimitedWarning refusals_{"tls"};
};

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const dagvault::v1::TlsFiles& files, bool insecure_dev, const std::string& what,
    const ExpectedPeer& expected) {
  if (insecure_dev) {
    logging::Get("tls")->warn(
        "{}: plain text, no TLS (--insecure-dev): the server's identity is not checked; never "
        "use this in production",
        what);
    return grpc::InsecureChannelCredentials();
  }
  ASSIGN_OR_RETURN(TlsPems p, LoadTlsPems(files, what));
  namespace x = grpc::experimental;
  x::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(std::make_shared<x::StaticDataCertificateProvider>(
      p.ca, std::vector<x::IdentityKeyCertPair>{{p.key, p.cert}}));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_certificate_verifier(
      x::ExternalCertificateVerifier::Create<PinnedPeerVerifier>(expected));
  return x::TlsCredentials(options);
}

std::string ExpectedPeer::Describe() const {
  if (common_name.empty()) {
    return absl::StrCat(role == kRoleAdmin ? "an " : "a ", role);
  }
  return absl::StrCat(common_name, " (", role, ")");
}

absl::Status CheckPeer(const PeerIdentity& peer, const ExpectedPeer& expected,
                       absl::string_view address) {
  if (peer.authenticated && peer.role == expected.role &&
      (expected.common_name.empty() || peer.common_name == expected.common_name)) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat("refused: ", address,
                                                  " presents the certificate of ", peer.Describe(),
                                                  ", expected ", expected.Describe()));
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
  PeerIdentity id = IdentityOfCertificate(cert);
  X509_free(cert);
  return id;
}

PeerIdentity IdentityOfCertificate(X509* cert) {
  PeerIdentity id;
  id.authenticated = true;
  X509_NAME* subject = X509_get_subject_name(cert);
  id.common_name = NameEntry(subject, NID_commonName);
  id.role = NameEntry(subject, NID_organizationalUnitName);
  return id;
}

PeerIdentity PeerOfAuthContext(const grpc::AuthContext& auth) {
  if (!auth.IsPeerAuthenticated()) return {};
  for (const auto& pem : auth.FindPropertyValues("x509_pem_cert")) {
    auto id = IdentityOfPem(std::string(pem.data(), pem.size()));
    if (id.ok()) return *id;
  }
  return {};
}

PeerIdentity PeerOf(const grpc::ServerContextBase& context) {
  auto auth = context.auth_context();
  if (!auth) return {};
  return PeerOfAuthContext(*auth);
}

namespace {

class AllowOnlyProcessor final : public grpc::AuthMetadataProcessor {
 public:
  AllowOnlyProcessor(std::string role, std::set<std::string> names)
      : role_(std::move(role)), names_(std::move(names)) {}
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata&, grpc::AuthContext* context, OutputMetadata*,
                       OutputMetadata*) override {
    const PeerIdentity peer = PeerOfAuthContext(*context);
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
