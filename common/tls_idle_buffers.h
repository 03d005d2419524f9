// OpenSSL's SSL_MODE_RELEASE_BUFFERS for every TLS connection of a
// process that links this file (gRPC's, and libpq's to PostgreSQL): a
// connection then frees its 16 KB record buffers whenever they are empty,
// and allocates them again for the next record. The coordinator holds one
// connection per agent, nearly all idle between reports (every 5 s). In
// practice only the write buffer goes (gRPC keeps a read waiting, which
// holds the read buffer): 342 -> 329 MB at 2,000 agents (docs/ha.md).
//
// gRPC (1.51, Debian 12) creates its SSL objects itself and offers no
// hook to set a mode on them, so tls_idle_buffers.cc defines SSL_new,
// which the process's libgrpc then calls in place of libssl's: it calls
// libssl's SSL_new and sets the mode on what it returns. The executable
// exports the symbol (CMake's dagvault_tls_idle_buffers target links with
// --export-dynamic-symbol=SSL_new); SslObjectsReleasingIdleBuffers shows
// in tests that gRPC's connections go through it. The mode changes when
// memory is held, never what is sent, checked or refused.
#pragma once

#include <cstdint>

namespace dagvault {

// How many SSL objects this process created with the mode set.
uint64_t SslObjectsReleasingIdleBuffers();

}  // namespace dagvault
