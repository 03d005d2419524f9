// The steps of an all-copies restore that act on one node's copy (DESIGN.md
// §5): suspend, dismount, reseed, resume, digest. Each goes through the
// local mailstored's Admin service on the writers' socket, as an Exchange
// agent uses the local cmdlets, and each is safe to repeat: a re-run of a
// stopped restore sends them again.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dagvault/v1/agent.pb.h"
#include "dagvault/v1/store.grpc.pb.h"

namespace dagvault::agent {

struct CopyOperationContext {
  dagvault::v1::Admin::StubInterface* admin = nullptr;
  std::string node;
  const std::atomic<bool>* cancel = nullptr;
  // Called while a long step waits (a reseed, a replay), with what it waits for.
  std::function<void(const std::string& phase)> progress;
  // The active copy's digest: called once it has closed the generation the
  // passive copies are checked at, before its own digests are taken, so
  // that theirs can start at once.
  std::function<void(uint32_t generation)> closed_generation;
  absl::Duration poll_every = absl::Milliseconds(300);
  // A copy that reports Failed (not FailedAndSuspended) while a step waits
  // for it may be passing through a transient error (its active copy did
  // not answer in time); the step fails only once it stays Failed this long.
  absl::Duration failed_grace = absl::Seconds(60);
  // A reseed asked of a copy still being restored from the repository (an
  // earlier attempt's writer session not yet ended) is asked again for up
  // to this long.
  absl::Duration restoring_grace = absl::Seconds(90);
};

absl::StatusOr<dagvault::v1::CopyOperationResult> RunCopyOperation(
    const CopyOperationContext& context, const std::string& unit,
    const dagvault::v1::CopyOperation& operation);

}  // namespace dagvault::agent
