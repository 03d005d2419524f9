#include "common/tls_front.h"

#include <arpa/inet.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/rate_limited_warning.h"
#include "common/status_macros.h"

namespace dagvault {
namespace {

// One read or write of either side at a time.
constexpr size_t kChunk = 16 * 1024;

// A non-blocking call that may simply be made again later.
bool Retryable(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == EINTR; }

std::string OpenSslErrors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    absl::StrAppend(&out, out.empty() ? "" : "; ", buf);
  }
  return out.empty() ? "no detail from OpenSSL" : out;
}

// gRPC's clients offer "h2" (and older ones "grpc-exp"); the connection
// carries HTTP/2 to gRPC, so h2 it is, or no connection.
int SelectH2(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
             unsigned int in_len, void*) {
  for (unsigned int i = 0; i < in_len;) {
    const unsigned int len = in[i];
    if (i + 1 + len > in_len) break;
    if (len == 2 && std::memcmp(in + i + 1, "h2", 2) == 0) {
      *out = in + i + 1;
      *out_len = 2;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

absl::StatusOr<SSL_CTX*> MakeContext(const dagvault::v1::TlsFiles& files, const std::string& what) {
  ASSIGN_OR_RETURN(TlsPems pems, LoadTlsPems(files, what));
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return absl::InternalError(absl::StrCat(what, ": ", OpenSslErrors()));
  auto fail = [&](const std::string& why) {
    SSL_CTX_free(ctx);
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", why, " (", OpenSslErrors(), ")"));
  };
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // A TLS 1.2 renegotiation would make a write wait for a read.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  // Every connection is one agent's or person's, for hours: no resumption
  // to keep, and an idle connection keeps no record buffer.
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // One read(2) takes whatever the socket holds, not a record's header and
  // then its body. Buffered bytes are then OpenSSL's, and Pump asks
  // SSL_has_pending for them (epoll cannot see them).
  SSL_CTX_set_read_ahead(ctx, 1);
  // The certificate chain and key.
  {
    BIO* bio = BIO_new_mem_buf(pems.cert.data(), static_cast<int>(pems.cert.size()));
    X509* leaf = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    bool ok = leaf != nullptr && SSL_CTX_use_certificate(ctx, leaf) == 1;
    X509_free(leaf);
    while (ok) {  // intermediates after the leaf, if any
      X509* extra = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
      if (extra == nullptr) break;
      if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1) {
        X509_free(extra);
        ok = false;
      }
    }
    ERR_clear_error();  // the end of the PEM list
    BIO_free(bio);
    if (!ok) return fail("tls.cert_file: the certificate does not load");
  }
  {
    BIO* bio = BIO_new_mem_buf(pems.key.data(), static_cast<int>(pems.key.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    const bool ok = key != nullptr && SSL_CTX_use_PrivateKey(ctx, key) == 1;
    EVP_PKEY_free(key);
    if (!ok) return fail("tls.key_file: the key does not load");
    if (SSL_CTX_check_private_key(ctx) != 1) {
      return fail("tls.key_file does not match tls.cert_file");
    }
  }
  // Clients: only certificates the deployment CA signed, and one required.
  {
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    BIO* bio = BIO_new_mem_buf(pems.ca.data(), static_cast<int>(pems.ca.size()));
    int added = 0;
    while (X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      added += X509_STORE_add_cert(store, ca) == 1;
      X509_free(ca);
    }
    ERR_clear_error();
    BIO_free(bio);
    if (added == 0) return fail("tls.ca_file: no CA certificate loads");
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_alpn_select_cb(ctx, SelectH2, nullptr);
  return ctx;
}

absl::StatusOr<int> Listen(const std::string& address, int* port) {
  std::string host(address);
  std::string port_text;
  if (const size_t colon = address.rfind(':'); colon != std::string::npos) {
    host = address.substr(0, colon);
    port_text = address.substr(colon + 1);
  }
  host = std::string(absl::StripSuffix(absl::StripPrefix(host, "["), "]"));
  int wanted = 0;
  if (!absl::SimpleAtoi(port_text, &wanted) || wanted < 0 || wanted > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen: ", address, " is not HOST:PORT (a port of 0 to 65535)"));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(wanted);
  const int rc =
      getaddrinfo(host.empty() || host == "0.0.0.0" || host == "::" ? nullptr : host.c_str(),
                  service.c_str(), &hints, &found);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen: cannot resolve ", address, ": ", gai_strerror(rc)));
  }
  std::string why = "no address";
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 4096) != 0) {
      why = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot listen on ", address, ": ", why));
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  *port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return fd;
}

// A peer that is gone without a reset (its machine lost, a partition) is
// found by the kernel, not by HTTP/2 pings through gRPC: a ping costs the
// leader a timer, a write and two wake-ups per connection, where TCP's
// keepalive probes and acknowledgements cost it nothing. Bytes the peer's
// kernel has not acknowledged within 20 s end the connection (the leader
// writes to an agent at least every other report period: a ReportAck), and
// so does a connection quiet for 10 s whose two probes 5 s apart go
// unanswered. Not shorter: a slow reader of a large answer (a `status
// --copies` of every node) must not be cut.
void WatchForADeadPeer(int fd) {
  const int on = 1, idle_s = 10, interval_s = 5, probes = 2, unacked_ms = 20000;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof(idle_s));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof(interval_s));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof(probes));
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &unacked_ms, sizeof(unacked_ms));
}

std::string PeerAddress(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof(a);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return "an unknown address";
  char host[INET6_ADDRSTRLEN] = {0};
  int port = 0;
  if (a.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    port = ntohs(in6->sin6_port);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&a);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
  }
  return absl::StrCat(host, ":", port);
}

}  // namespace

class TlsFront::Impl {
 public:
  Impl(SSL_CTX* ctx, int listener, int port, grpc_server* server, absl::Duration handshake_timeout)
      : ctx_(ctx),
        listener_(listener),
        port_(port),
        server_(server),
        handshake_timeout_(handshake_timeout) {}

  ~Impl() {
    if (thread_.joinable()) {
      stopping_ = true;
      const uint64_t one = 1;
      (void)!::write(wake_, &one, sizeof(one));
      thread_.join();
    }
    for (auto& [id, c] : connections_) Release(*c);
    if (epoll_ >= 0) ::close(epoll_);
    if (wake_ >= 0) ::close(wake_);
    if (listener_ >= 0) ::close(listener_);
    SSL_CTX_free(ctx_);
  }

  absl::Status Start() {
    // OpenSSL writes the sockets with write(2): a peer gone would raise
    // SIGPIPE and end the process. Servers ignore it; errors say the rest.
    ::signal(SIGPIPE, SIG_IGN);
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epoll_ < 0 || wake_ < 0) {
      return absl::InternalError(absl::StrCat("TLS front: ", std::strerror(errno)));
    }
    Add(listener_, EPOLLIN, &listener_tag_);
    Add(wake_, EPOLLIN, &wake_tag_);
    thread_ = std::thread([this] { Run(); });
    return absl::OkStatus();
  }

  void StopAccepting() {
    stop_accepting_ = true;
    const uint64_t one = 1;
    (void)!::write(wake_, &one, sizeof(one));
  }

  int port() const { return port_; }
  size_t connections() const { return open_.load(); }
  uint64_t refused() const { return refused_.load(); }

  std::optional<PeerIdentity> IdentityOf(absl::string_view grpc_peer) const {
    int fd = -1;
    if (!absl::ConsumePrefix(&grpc_peer, "fd:") || !absl::SimpleAtoi(grpc_peer, &fd)) {
      return std::nullopt;
    }
    std::lock_guard<std::mutex> l(identities_mu_);
    auto it = identities_.find(fd);
    if (it == identities_.end()) return std::nullopt;
    return it->second.peer;
  }

 private:
  struct Connection;
  // What an epoll event's data points at: one side of a connection.
  struct Tag {
    Connection* c = nullptr;
    bool local = false;
  };
  struct Connection {
    uint64_t id = 0;
    int tcp = -1;
    int local = -1;    // this end of the socket pair
    int grpc_fd = -1;  // gRPC's end (its number names the connection)
    SSL* ssl = nullptr;
    std::string address;
    bool handshaken = false;
    bool closed = false;
    absl::Duration handshake_deadline;
    // Decrypted bytes gRPC has not taken yet.
    std::string to_grpc;
    // Bytes from gRPC SSL_write has not taken yet (retried as they are).
    std::string to_peer;
    // OpenSSL asked for the other direction's readiness.
    bool read_wants_write = false, write_wants_read = false;
    // epoll said the side has bytes (or an end), and no read since left it
    // looking empty: a read that found nothing, a short one, or one after
    // which OpenSSL holds nothing. A wrong guess costs a round, not bytes:
    // level-triggered epoll reports a side again while bytes remain. It
    // saves the system calls that would only find an empty socket.
    bool tcp_readable = false, local_readable = false;
    uint32_t tcp_events = 0, local_events = 0;  // as registered
    Tag tcp_tag, local_tag;
  };
  struct Identity {
    uint64_t connection = 0;
    PeerIdentity peer;
  };

  void Add(int fd, uint32_t events, Tag* tag) {
    epoll_event e{};
    e.events = events;
    e.data.ptr = tag;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &e);
  }
  void Modify(int fd, uint32_t events, uint32_t* registered, Tag* tag) {
    if (events == *registered) return;
    epoll_event e{};
    e.events = events;
    e.data.ptr = tag;
    ::epoll_ctl(epoll_, EPOLL_CTL_MOD, fd, &e);
    *registered = events;
  }

  void Run() {
    std::vector<epoll_event> events(256);
    absl::Duration next_sweep = RealClock()->Monotonic() + absl::Seconds(1);
    while (!stopping_) {
      const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 1000);
      for (int i = 0; i < n; ++i) {
        auto* tag = static_cast<Tag*>(events[static_cast<size_t>(i)].data.ptr);
        if (tag == &listener_tag_) {
          AcceptAll();
        } else if (tag == &wake_tag_) {
          uint64_t drained;
          (void)!::read(wake_, &drained, sizeof(drained));
        } else if (!tag->c->closed) {
          // A side gone (hang-up or error) is reported even when nothing is
          // watched on it: the connection ends, or this loop would spin.
          if (events[static_cast<size_t>(i)].events & (EPOLLHUP | EPOLLERR)) {
            Close(*tag->c);
          } else {
            if (events[static_cast<size_t>(i)].events & EPOLLIN) {
              (tag->local ? tag->c->local_readable : tag->c->tcp_readable) = true;
            }
            Service(*tag->c);
          }
        }
      }
      const absl::Duration now = RealClock()->Monotonic();
      if (stop_accepting_ && listener_ >= 0) {
        ::epoll_ctl(epoll_, EPOLL_CTL_DEL, listener_, nullptr);
        ::close(listener_);
        listener_ = -1;
      }
      if (now >= next_sweep) {
        next_sweep = now + absl::Seconds(1);
        if (listener_paused_ && listener_ >= 0) {
          listener_paused_ = false;
          Add(listener_, EPOLLIN, &listener_tag_);
        }
        for (auto& [id, c] : connections_) {
          if (!c->handshaken && !c->closed && now >= c->handshake_deadline) {
            Refuse(*c, "the TLS handshake did not finish in time");
          }
        }
      }
      // Freed after the batch: a later event of the batch may name one.
      for (const uint64_t id : closed_) {
        if (auto it = connections_.find(id); it != connections_.end()) {
          Release(*it->second);
          connections_.erase(it);
        }
      }
      closed_.clear();
    }
  }

  void AcceptAll() {
    while (true) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: the waiting connection stays queued and
          // the level-triggered listener would fire at once again. Not
          // watched for a second.
          accept_errors_.Warn(absl::StrCat("TLS front on port ", port_, ": accept: ",
                                           std::strerror(errno), "; accepting again in 1 s"));
          ::epoll_ctl(epoll_, EPOLL_CTL_DEL, listener_, nullptr);
          listener_paused_ = true;
        } else if (!Retryable(errno)) {
          accept_errors_.Warn(
              absl::StrCat("TLS front on port ", port_, ": accept: ", std::strerror(errno)));
        }
        return;
      }
      if (handshaking_ >= kMaxHandshaking) {
        // Thousands of connections that have not shown a certificate yet:
        // a flood, not agents. Each new one is closed at once.
        ++refused_;
        ::close(fd);
        continue;
      }
      auto c = std::make_unique<Connection>();
      c->id = ++last_id_;
      c->tcp = fd;
      c->address = PeerAddress(fd);
      WatchForADeadPeer(fd);
      c->ssl = SSL_new(ctx_);
      if (c->ssl == nullptr || SSL_set_fd(c->ssl, fd) != 1) {
        log_->warn("TLS front: no SSL object for {}: {}", c->address, OpenSslErrors());
        if (c->ssl) SSL_free(c->ssl);
        ::close(fd);
        continue;
      }
      SSL_set_accept_state(c->ssl);
      c->handshake_deadline = RealClock()->Monotonic() + handshake_timeout_;
      ++handshaking_;
      c->tcp_tag = {c.get(), false};
      c->local_tag = {c.get(), true};
      c->tcp_events = EPOLLIN;
      c->tcp_readable = true;  // the client speaks first
      Add(fd, EPOLLIN, &c->tcp_tag);
      Connection& added = *c;
      connections_.emplace(c->id, std::move(c));
      Service(added);
    }
  }

  void Service(Connection& c) {
    if (!c.handshaken) {
      Handshake(c);
      if (!c.handshaken || c.closed) return;
    }
    Pump(c);
    if (!c.closed) Watch(c);
  }

  void Handshake(Connection& c) {
    ERR_clear_error();
    const int r = SSL_do_handshake(c.ssl);
    if (r != 1) {
      const int error = SSL_get_error(c.ssl, r);
      if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
        Modify(c.tcp, error == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN, &c.tcp_events,
               &c.tcp_tag);
        return;
      }
      const long verify = SSL_get_verify_result(c.ssl);
      Refuse(c, absl::StrCat(
                    "the TLS handshake failed: ",
                    verify != X509_V_OK
                        ? absl::StrCat("its certificate: ", X509_verify_cert_error_string(verify))
                        : OpenSslErrors()));
      return;
    }
    const unsigned char* alpn = nullptr;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(c.ssl, &alpn, &alpn_len);
    if (alpn_len != 2 || std::memcmp(alpn, "h2", 2) != 0) {
      Refuse(c, "it did not offer HTTP/2 (ALPN h2): not a gRPC client");
      return;
    }
    X509* cert = SSL_get0_peer_certificate(c.ssl);
    if (cert == nullptr) {  // not expected: the handshake requires one
      Refuse(c, "it presented no certificate");
      return;
    }
    const PeerIdentity peer = IdentityOfCertificate(cert);
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) {
      Refuse(c, absl::StrCat("no socket pair for gRPC: ", std::strerror(errno)));
      return;
    }
    c.local = pair[0];
    c.grpc_fd = pair[1];
    {
      // Before gRPC can read a byte of it: its first call finds the name.
      std::lock_guard<std::mutex> l(identities_mu_);
      identities_[c.grpc_fd] = {c.id, peer};
    }
    c.handshaken = true;
    c.tcp_readable = true;  // the client's first bytes may follow its Finished
    --handshaking_;
    ++open_;
    c.local_events = EPOLLIN;
    Add(c.local, EPOLLIN, &c.local_tag);
    // gRPC owns pair[1] from here and closes it when the connection ends.
    grpc_server_credentials* insecure = grpc_insecure_server_credentials_create();
    grpc_server_add_channel_from_fd(server_, c.grpc_fd, insecure);
    grpc_server_credentials_release(insecure);
  }

  // Moves what it can both ways, until neither side can take or give more.
  void Pump(Connection& c) {
    char buf[kChunk];
    for (bool progress = true; progress && !c.closed;) {
      progress = false;
      // Decrypted bytes to gRPC first: TLS is read only when they are gone.
      if (!c.to_grpc.empty()) {
        const ssize_t n = ::send(c.local, c.to_grpc.data(), c.to_grpc.size(), MSG_NOSIGNAL);
        if (n > 0) {
          c.to_grpc.erase(0, static_cast<size_t>(n));
          if (c.to_grpc.empty()) std::string().swap(c.to_grpc);
          progress = true;
        } else if (n < 0 && !Retryable(errno)) {
          return Close(c);  // gRPC closed its end
        }
      }
      // OpenSSL may hold bytes it read ahead (records, or part of one),
      // which epoll cannot see; a read that wanted a write goes again
      // whatever the socket holds.
      if (c.to_grpc.empty() && (c.tcp_readable || c.read_wants_write || SSL_has_pending(c.ssl))) {
        ERR_clear_error();
        const int n = SSL_read(c.ssl, buf, sizeof(buf));
        c.read_wants_write = false;
        if (n > 0) {
          // Read ahead, OpenSSL took what the socket held, up to its
          // buffer; were there more, epoll says so on its next round.
          if (!SSL_has_pending(c.ssl)) c.tcp_readable = false;
          const ssize_t w = ::send(c.local, buf, static_cast<size_t>(n), MSG_NOSIGNAL);
          const size_t taken = w > 0 ? static_cast<size_t>(w) : 0;
          if (w < 0 && !Retryable(errno)) return Close(c);
          if (taken < static_cast<size_t>(n)) c.to_grpc.assign(buf + taken, buf + n);
          progress = true;
        } else {
          const int error = SSL_get_error(c.ssl, n);
          if (error == SSL_ERROR_WANT_WRITE) {
            c.read_wants_write = true;
          } else if (error == SSL_ERROR_WANT_READ) {
            c.tcp_readable = false;
          } else {
            return Close(c);  // the peer closed, or the connection failed
          }
        }
      }
      // gRPC's bytes to the peer.
      if (c.to_peer.empty() && c.local_readable) {
        const ssize_t n = ::recv(c.local, buf, sizeof(buf), 0);
        if (n > 0) {
          c.to_peer.assign(buf, static_cast<size_t>(n));
          // Less than asked for: the socket pair was empty after it.
          if (static_cast<size_t>(n) < sizeof(buf)) c.local_readable = false;
          progress = true;
        } else if (n == 0 || !Retryable(errno)) {
          return Close(c);  // gRPC ended the connection
        } else {
          c.local_readable = false;
        }
      }
      if (!c.to_peer.empty() && !c.read_wants_write) {
        ERR_clear_error();
        const int n = SSL_write(c.ssl, c.to_peer.data(), static_cast<int>(c.to_peer.size()));
        c.write_wants_read = false;
        if (n > 0) {
          c.to_peer.erase(0, static_cast<size_t>(n));
          if (c.to_peer.empty()) std::string().swap(c.to_peer);
          progress = true;
        } else {
          const int error = SSL_get_error(c.ssl, n);
          if (error == SSL_ERROR_WANT_READ) {
            c.write_wants_read = true;
          } else if (error != SSL_ERROR_WANT_WRITE) {
            return Close(c);
          }
        }
      }
    }
  }

  // What each side waits for, from what is pending.
  void Watch(Connection& c) {
    uint32_t tcp = 0, local = 0;
    if (c.to_grpc.empty() || c.write_wants_read) tcp |= EPOLLIN;
    if (c.read_wants_write || (!c.to_peer.empty() && !c.write_wants_read)) tcp |= EPOLLOUT;
    if (c.to_peer.empty()) local |= EPOLLIN;
    if (!c.to_grpc.empty()) local |= EPOLLOUT;
    Modify(c.tcp, tcp, &c.tcp_events, &c.tcp_tag);
    Modify(c.local, local, &c.local_events, &c.local_tag);
  }

  void Refuse(Connection& c, const std::string& why) {
    ++refused_;
    refusals_.Warn(
        absl::StrCat("refused a connection from ", c.address, " on port ", port_, ": ", why));
    Close(c);
  }

  // Stops watching; the descriptors go when the batch is done (Release).
  void Close(Connection& c) {
    if (c.closed) return;
    c.closed = true;
    closed_.push_back(c.id);
    // The identity stays: gRPC keeps its descriptor, and so its number,
    // until the transport's last call is gone, and a call may still run
    // after this end closed. A new connection given the number later
    // replaces it.
    if (c.handshaken) {
      --open_;
    } else {
      --handshaking_;
    }
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c.tcp, nullptr);
    if (c.local >= 0) ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c.local, nullptr);
  }

  void Release(Connection& c) {
    if (!c.closed) Close(c);
    if (c.ssl != nullptr) {
      if (c.handshaken) SSL_shutdown(c.ssl);  // best effort: a close_notify
      SSL_free(c.ssl);
      c.ssl = nullptr;
    }
    if (c.tcp >= 0) ::close(c.tcp);
    if (c.local >= 0) ::close(c.local);
    c.tcp = c.local = -1;
  }

  static constexpr int kMaxHandshaking = 4096;

  SSL_CTX* const ctx_;
  int listener_;  // -1 once closed (StopAccepting)
  const int port_;
  grpc_server* const server_;
  const absl::Duration handshake_timeout_;
  int epoll_ = -1;
  int wake_ = -1;
  Tag listener_tag_, wake_tag_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stop_accepting_{false};
  bool listener_paused_ = false;  // out of descriptors: not watched for a second
  int handshaking_ = 0;           // accepted, handshake not finished
  std::thread thread_;
  // Only the front's thread touches these.
  std::map<uint64_t, std::unique_ptr<Connection>> connections_;
  std::vector<uint64_t> closed_;  // closed in this batch, to free after it
  uint64_t last_id_ = 0;
  std::atomic<size_t> open_{0};
  std::atomic<uint64_t> refused_{0};
  mutable std::mutex identities_mu_;
  // By gRPC's descriptor number.
  absl::flat_hash_map<int, Identity> identities_;  // guarded by identities_mu_
  RateLimitedWarning refusals_{"tls", absl::Minutes(1)};
  RateLimitedWarning accept_errors_{"tls", absl::Minutes(1)};
  std::shared_ptr<spdlog::logger> log_ = logging::Get("tls");
};

TlsFront::TlsFront(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsFront::~TlsFront() = default;

absl::StatusOr<std::unique_ptr<TlsFront>> TlsFront::Start(const TlsFrontOptions& options,
                                                          grpc_server* server) {
  const std::string what = absl::StrCat("listener ", options.listen);
  ASSIGN_OR_RETURN(SSL_CTX * ctx, MakeContext(options.tls, what));
  int port = 0;
  absl::StatusOr<int> listener = Listen(options.listen, &port);
  if (!listener.ok()) {
    SSL_CTX_free(ctx);
    return listener.status();
  }
  auto impl = std::make_unique<Impl>(ctx, *listener, port, server, options.handshake_timeout);
  RETURN_IF_ERROR(impl->Start());
  return std::unique_ptr<TlsFront>(new TlsFront(std::move(impl)));
}

int TlsFront::port() const { return impl_->port(); }
void TlsFront::StopAccepting() { impl_->StopAccepting(); }
std::optional<PeerIdentity> TlsFront::IdentityOf(absl::string_view grpc_peer) const {
  return impl_->IdentityOf(grpc_peer);
}
size_t TlsFront::connections() const { return impl_->connections(); }
uint64_t TlsFront::handshakes_refused() const { return impl_->refused(); }

}  // namespace dagvault
