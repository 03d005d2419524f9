// Backup chains, from manifests alone (DESIGN.md §5, "Cross-server
// chains"): what an Incremental or a Differential follows, which backups a
// restore to a generation needs, and whether they join.
//
// A chain starts at a Full. Incrementals extend it, each beginning at or
// before the generation after the previous piece's high generation; a
// Differential follows the Full directly. Pieces join when they share the
// log and database signatures and the first new log's link hash is the
// SHA-256 of the log before it (ManifestFile.link_hash). The pieces may come
// from different nodes: a copy's logs are the active's, byte for byte.
// A Copy backup is never part of a chain.
//
// Log archive segments (LOG_ARCHIVE, closed logs archived as they close)
// extend a chain past its Full and Incrementals: each segment joins the one
// before it, or the chain's last backup, like an Incremental, and every
// generation in them is a restore point. Segments overlap each other and
// later Incrementals freely (generations both hold must be the same bytes
// to be used). Where the archive stops joining (a gap, or a divergence
// after a lossy failover), the chain's archived range ends, named like a
// backup's break; a later Full starts a chain the new stream's segments
// extend.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dagvault/v1/repository.pb.h"

namespace dagvault::repository {

// Where a chain breaks: the first generation that cannot be restored
// through it, and why.
struct ChainBreak {
  uint32_t generation = 0;
  std::string reason;
};

// A chain points into the manifests it was assembled from, which must
// outlive it: assembling 5,000 catalogued backups copies none of them.
struct Chain {
  const dagvault::v1::Manifest* full = nullptr;
  // In order; each joins the one before (or the Full).
  std::vector<const dagvault::v1::Manifest*> incrementals;
  // Differentials of this Full, oldest first; each joins the Full.
  std::vector<const dagvault::v1::Manifest*> differentials;
  // Set when a later Incremental does not join: the chain ends before it.
  std::optional<ChainBreak> broken;
  // Log archive segments past the last Incremental (or the Full), in
  // generation order; each joins the one before. Only for a chain that is
  // not broken, and only up to the next chain's Full (the archive past it
  // extends that chain).
  std::vector<const dagvault::v1::Manifest*> archived;
  // Where the archive stops joining the chain (a gap or a divergence).
  std::optional<ChainBreak> archive_broken;

  // The newest generation a restore through this chain reaches (archived
  // logs included).
  uint32_t high_generation() const;
  // The same through its backups only (Full, Incrementals, Differentials).
  uint32_t backed_up_high_generation() const;
};

// The chains of `unit`, oldest first, from any set of manifests (other
// units' are ignored). Each Full starts a chain.
std::vector<Chain> AssembleChains(const std::vector<dagvault::v1::Manifest>& manifests,
                                  const std::string& unit);
// The same over manifests kept elsewhere (the coordinator's catalog
// records), without copying them first.
std::vector<Chain> AssembleChains(const std::vector<const dagvault::v1::Manifest*>& manifests,
                                  const std::string& unit);
// The chains would point into a temporary.
std::vector<Chain> AssembleChains(std::vector<dagvault::v1::Manifest>&& manifests,
                                  const std::string& unit) = delete;

// What a new backup of `type` follows: for an Incremental, the newest
// piece of the newest chain (its Full or last Incremental); for a
// Differential, the newest Full. A broken chain is refused, naming the
// generation: the next backup must be a Full.
absl::StatusOr<dagvault::v1::Manifest> BaseFor(const std::vector<Chain>& chains,
                                               dagvault::v1::BackupType type,
                                               const std::string& unit);

// The backups a restore to `to_generation` needs (0: the newest restore
// point of the newest chain): the newest chain whose Full is at or before
// it, then one Differential reaching it if there is one, else the
// Incrementals up to the first that reaches it, else all of them and the
// log archive segments up to the first that reaches it. Refused when no chain
// reaches it, naming the generation where the chain ends or breaks.
absl::StatusOr<std::vector<dagvault::v1::Manifest>> RestoreChain(const std::vector<Chain>& chains,
                                                                 uint32_t to_generation,
                                                                 const std::string& unit);

// Checks that `pieces` (a Full, then Incrementals and log archive
// segments, or a Full and one Differential) form one chain: same signatures, contiguous
// generations, joining link hashes. The error names the generation where it breaks.
absl::Status CheckChain(const std::vector<dagvault::v1::Manifest>& pieces);

// Checks that `next` joins `previous`: same signatures, no gap, and the
// first new log links to the log before it. For a backup about to be
// taken as well as for one in the repository.
absl::Status CheckJoin(const dagvault::v1::Manifest& previous, const dagvault::v1::Manifest& next);

// The manifest cut down to what chains need: its header and its files with
// their hashes and link hashes, without chunk lists or block maps. Agents
// send it with a result; the coordinator's catalog keeps it.
dagvault::v1::Manifest ChainSummaryOf(const dagvault::v1::Manifest& manifest);

// The log of `generation` in a manifest, or null.
const dagvault::v1::ManifestFile* FindLog(const dagvault::v1::Manifest& m, uint32_t generation);

}  // namespace dagvault::repository
