// tls_idle_buffers.h: why the process defines SSL_new.
#include "common/tls_idle_buffers.h"

#include <dlfcn.h>
#include <openssl/ssl.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace dagvault {
namespace {

std::atomic<uint64_t> ssl_objects{0};

using SslNewFunction = SSL* (*)(SSL_CTX*);

// libssl's own SSL_new: the next definition after this executable's.
SslNewFunction LibsslSslNew() {
  static const SslNewFunction libssl = [] {
    void* symbol = dlsym(RTLD_NEXT, "SSL_new");
    if (symbol == nullptr) {
      // Without it no TLS connection can be made at all: say so and stop
      // rather than fail every handshake with a misleading error.
      std::fprintf(stderr, "dagvault: libssl's SSL_new not found: %s\n", dlerror());
      std::abort();
    }
    return reinterpret_cast<SslNewFunction>(symbol);
  }();
  return libssl;
}

}  // namespace

uint64_t SslObjectsReleasingIdleBuffers() { return ssl_objects.load(); }

}  // namespace dagvault

extern "C" SSL* SSL_new(SSL_CTX* context) {
  SSL* ssl = dagvault::LibsslSslNew()(context);
  if (ssl != nullptr) {
    SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    dagvault::ssl_objects.fetch_add(1);
  }
  return ssl;
}
