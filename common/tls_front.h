// A mutual-TLS front for a gRPC server: it accepts each TCP connection,
// does the TLS handshake itself (the deployment CA, a client certificate
// required, ALPN h2), and hands gRPC the plain-text end of a socket pair
// (grpc_server_add_channel_from_fd), pumping bytes between the two.
//
// Why: gRPC 1.51 (Debian 12) keeps about 70 KB per idle TLS connection
// that it cannot be told to shrink: a BIO pair of 2 x 17 KB between
// OpenSSL and the socket, two 8 KB staging buffers, and OpenSSL's read
// buffer, which its reads keep allocated (docs/ha.md, "Memory"). The
// coordinator holds one connection per agent, 10,000 of them. Here an
// idle connection keeps only its SSL object: OpenSSL reads the socket
// itself, SSL_MODE_RELEASE_BUFFERS frees both record buffers while nothing
// is in flight, and the pump's own buffers exist only while bytes wait.
//
// gRPC sees these connections as plain text, peer "fd:N", with no auth
// context (a metadata processor on an fd channel's credentials never runs
// in gRPC 1.51: checked). Who is at the other end is IdentityOf(peer), and
// the services check it in their handlers.
#pragma once

#include <grpc/grpc.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/tls.h"
#include "dagvault/v1/options.pb.h"

namespace dagvault {

struct TlsFrontOptions {
  // host:port; port 0 picks a free one (TlsFront::port()).
  std::string listen;
  dagvault::v1::TlsFiles tls;
  // A connection that has not finished its handshake by then is closed.
  absl::Duration handshake_timeout = absl::Seconds(20);
};

class TlsFront {
 public:
  // Listens and starts accepting for `server`, which must already be
  // started, with no listening port of its own.
  static absl::StatusOr<std::unique_ptr<TlsFront>> Start(const TlsFrontOptions& options,
                                                         grpc_server* server);
  // Closes the listener and every connection.
  ~TlsFront();

  int port() const;
  // Closes the listener (soon, on the front's thread); connections already
  // open carry on. Before the gRPC server's Shutdown, so that it is handed
  // no new connection while it drains.
  void StopAccepting();
  // The verified certificate of the connection gRPC names `grpc_peer`
  // (ServerContext::peer(), "fd:N"); nullopt for any other peer. Valid
  // while a call on that connection runs: gRPC 1.51 only shuts its
  // descriptor down when the connection ends, and closes it, freeing the
  // number for a new connection, when the transport's last call is gone.
  // Read it once per call and keep it.
  std::optional<PeerIdentity> IdentityOf(absl::string_view grpc_peer) const;
  // Connections that finished their handshake and are still open.
  size_t connections() const;
  // Connections refused during the handshake (no certificate, another CA,
  // no h2, a timeout) since the start.
  uint64_t handshakes_refused() const;

  class Impl;

 private:
  explicit TlsFront(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dagvault
