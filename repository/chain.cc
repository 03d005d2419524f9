#include "repository/chain.h"

#include <algorithm>
#include <limits>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/backup_type.h"
#include "common/status_macros.h"

namespace dagvault::repository {
namespace {

using dagvault::v1::BackupType;
using dagvault::v1::Manifest;
using dagvault::v1::ManifestFile;

std::string Gen(uint32_t g) { return absl::StrFormat("0x%08X", g); }

std::string Short(const std::string& digest) {
  return absl::BytesToHexString(digest).substr(0, 16);
}

std::string Describe(const Manifest& m) {
  return absl::StrCat(BackupTypeTitle(m.type()), " ", m.id(),
                      m.source_node().empty() ? "" : absl::StrCat(" from ", m.source_node()));
}

absl::Status Break(uint32_t generation, const std::string& why) {
  return absl::FailedPreconditionError(
      absl::StrCat("the chain breaks at generation ", Gen(generation), ": ", why));
}

// The generation a Break status names, parsed back for ChainBreak.
ChainBreak BreakOf(const Manifest& previous, const Manifest& next, const absl::Status& s) {
  ChainBreak b;
  b.generation = std::min(previous.high_generation() + 1, next.low_generation());
  b.reason = std::string(s.message());
  return b;
}

// Within one backup: every generation from its low to its high is there,
// and each log links to the one before it. A log missing from the middle,
// or one of another stream put in its place, breaks the chain there; the
// joins between backups (CheckJoin) cannot see it. A backup that holds no
// log at all (a database alone) has nothing to check.
absl::Status CheckOwnLogs(const Manifest& m) {
  if (m.high_generation() < m.low_generation() || m.high_generation() == 0) {
    return absl::OkStatus();
  }
  // One pass over the files: a Full may hold thousands of logs. A range
  // wider than the files can fill has a hole within its first files+1
  // generations, so no more slots are needed to find it.
  const uint64_t span = uint64_t{m.high_generation()} - m.low_generation() + 1;
  std::vector<const ManifestFile*> logs(
      std::min<uint64_t>(span, static_cast<uint64_t>(m.files_size()) + 1), nullptr);
  bool has_logs = false;
  for (const ManifestFile& f : m.files()) {
    if (f.role() != "log") continue;
    has_logs = true;
    if (f.generation() >= m.low_generation() && f.generation() - m.low_generation() < logs.size()) {
      logs[f.generation() - m.low_generation()] = &f;
    }
  }
  if (!has_logs) return absl::OkStatus();
  for (size_t i = 0; i < logs.size(); ++i) {
    const uint32_t g = m.low_generation() + static_cast<uint32_t>(i);
    if (logs[i] == nullptr) {
      return Break(g, absl::StrCat("log generation ", Gen(g), " is missing from ", Describe(m),
                                   ", which holds generations ", Gen(m.low_generation()), " to ",
                                   Gen(m.high_generation())));
    }
    if (i > 0 && logs[i]->link_hash() != logs[i - 1]->sha256()) {
      return Break(
          g, absl::StrCat(
                 "log generation ", Gen(g), " in ", Describe(m),
                 logs[i]->link_hash().empty()
                     ? std::string(" carries no link hash")
                     : absl::StrCat(" links to a log hashing to ", Short(logs[i]->link_hash())),
                 ", but generation ", Gen(g - 1), " there hashes to ", Short(logs[i - 1]->sha256()),
                 ": a log of another stream is in the backup"));
    }
  }
  return absl::OkStatus();
}

// Extends `chain` (not broken) with the log archive segments that join it
// past its last Incremental, in generation order. `segments` are sorted by
// low generation, then id. A segment wholly within what the chain already
// reaches adds nothing (an earlier upload of the same logs, or the other
// side of a divergence, which the next segment then shows); the first that
// does not join ends the archived range there.
void ExtendWithArchive(Chain& chain, const std::vector<const Manifest*>& segments,
                       uint32_t through) {
  const Manifest* previous = chain.incrementals.empty() ? chain.full : chain.incrementals.back();
  for (const Manifest* segment : segments) {
    if (segment->high_generation() <= previous->high_generation()) continue;
    // Past the next chain's Full, the archive extends that chain instead.
    if (segment->high_generation() > through) return;
    absl::Status joined = CheckJoin(*previous, *segment);
    if (!joined.ok()) {
      chain.archive_broken = BreakOf(*previous, *segment, joined);
      return;
    }
    chain.archived.push_back(segment);
    previous = segment;
  }
}

}  // namespace

const ManifestFile* FindLog(const Manifest& m, uint32_t generation) {
  for (const ManifestFile& f : m.files()) {
    if (f.role() == "log" && f.generation() == generation) return &f;
  }
  return nullptr;
}

uint32_t Chain::backed_up_high_generation() const {
  uint32_t high = full->high_generation();
  if (!incrementals.empty()) high = std::max(high, incrementals.back()->high_generation());
  for (const Manifest* d : differentials) high = std::max(high, d->high_generation());
  return high;
}

uint32_t Chain::high_generation() const {
  const uint32_t high = backed_up_high_generation();
  return archived.empty() ? high : std::max(high, archived.back()->high_generation());
}

absl::Status CheckJoin(const Manifest& previous, const Manifest& next) {
  const uint32_t first_new = previous.high_generation() + 1;
  if (!previous.log_signature().empty() && !next.log_signature().empty() &&
      previous.log_signature() != next.log_signature()) {
    return Break(next.low_generation(),
                 absl::StrCat(Describe(next), " has log signature ", next.log_signature(), ", but ",
                              Describe(previous), " has ", previous.log_signature(),
                              ": they belong to different log streams"));
  }
  if (previous.database_signatures_size() > 0 && next.database_signatures_size() > 0) {
    std::vector<std::string> a(previous.database_signatures().begin(),
                               previous.database_signatures().end());
    std::vector<std::string> b(next.database_signatures().begin(),
                               next.database_signatures().end());
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    if (a != b) {
      return Break(next.low_generation(),
                   absl::StrCat(Describe(next), " has database signatures ", absl::StrJoin(b, ","),
                                ", but ", Describe(previous), " has ", absl::StrJoin(a, ","),
                                ": the databases were re-created"));
    }
  }
  if (next.low_generation() > first_new) {
    return Break(first_new, absl::StrCat("generations ", Gen(first_new), " to ",
                                         Gen(next.low_generation() - 1), " are in no backup (",
                                         Describe(previous), " ends at ",
                                         Gen(previous.high_generation()), ", ", Describe(next),
                                         " begins at ", Gen(next.low_generation()), ")"));
  }
  // Generations both hold must be the same bytes. (A log archive segment
  // may begin before the piece it follows: only what both hold compares.)
  const uint32_t from = next.type() == dagvault::v1::LOG_ARCHIVE
                            ? std::max(next.low_generation(), previous.low_generation())
                            : next.low_generation();
  for (uint32_t g = from; g < first_new && g <= next.high_generation(); ++g) {
    const ManifestFile* a = FindLog(previous, g);
    const ManifestFile* b = FindLog(next, g);
    if (a == nullptr || b == nullptr) {
      return Break(g, absl::StrCat("log generation ", Gen(g), " is missing from ",
                                   Describe(a == nullptr ? previous : next)));
    }
    if (a->sha256() != b->sha256()) {
      return Break(
          g, absl::StrCat("log generation ", Gen(g), " differs between ", Describe(previous), " (",
                          Short(a->sha256()), ") and ", Describe(next), " (", Short(b->sha256()),
                          "): the log stream diverged"));
    }
  }
  if (next.high_generation() < first_new) return CheckOwnLogs(next);
  const ManifestFile* last = FindLog(previous, previous.high_generation());
  const ManifestFile* joining = FindLog(next, first_new);
  if (last == nullptr) {
    return Break(first_new, absl::StrCat(Describe(previous), " does not hold its high generation ",
                                         Gen(previous.high_generation())));
  }
  if (joining == nullptr) {
    return Break(first_new,
                 absl::StrCat(Describe(next), " does not hold log generation ", Gen(first_new)));
  }
  if (joining->link_hash() != last->sha256()) {
    return Break(first_new, absl::StrCat("log generation ", Gen(first_new), " in ", Describe(next),
                                         joining->link_hash().empty()
                                             ? std::string(" carries no link hash")
                                             : absl::StrCat(" links to a log hashing to ",
                                                            Short(joining->link_hash())),
                                         ", but generation ", Gen(previous.high_generation()),
                                         " in ", Describe(previous), " hashes to ",
                                         Short(last->sha256()), ": the log stream diverged"));
  }
  return CheckOwnLogs(next);
}

std::vector<Chain> AssembleChains(const std::vector<Manifest>& manifests, const std::string& unit) {
  std::vector<const Manifest*> all;
  all.reserve(manifests.size());
  for (const Manifest& m : manifests) all.push_back(&m);
  return AssembleChains(all, unit);
}

std::vector<Chain> AssembleChains(const std::vector<const Manifest*>& manifests,
                                  const std::string& unit) {
  std::vector<const Manifest*> mine;
  for (const Manifest* m : manifests) {
    if (m->unit() == unit) mine.push_back(m);
  }
  std::sort(mine.begin(), mine.end(),
            [](const Manifest* a, const Manifest* b) { return a->id() < b->id(); });
  std::vector<Chain> chains;
  std::vector<const Manifest*> segments;
  for (const Manifest* m : mine) {
    switch (m->type()) {
      case dagvault::v1::LOG_ARCHIVE:
        segments.push_back(m);
        break;
      case dagvault::v1::FULL: {
        chains.emplace_back();
        chains.back().full = m;
        // A Full restores to its high generation with all of its logs:
        // one with a hole restores to nothing, and the chain is broken
        // from its first generation on (the reason names the hole).
        if (absl::Status own = CheckOwnLogs(*m); !own.ok()) {
          chains.back().broken = ChainBreak{m->low_generation(), std::string(own.message())};
        }
        break;
      }
      case dagvault::v1::INCREMENTAL: {
        if (chains.empty() || chains.back().broken) break;
        Chain& c = chains.back();
        const Manifest& previous = c.incrementals.empty() ? *c.full : *c.incrementals.back();
        absl::Status joined = CheckJoin(previous, *m);
        if (joined.ok()) {
          c.incrementals.push_back(m);
        } else {
          c.broken = BreakOf(previous, *m, joined);
        }
        break;
      }
      case dagvault::v1::DIFFERENTIAL: {
        if (chains.empty()) break;
        Chain& c = chains.back();
        absl::Status joined = CheckJoin(*c.full, *m);
        if (joined.ok()) {
          c.differentials.push_back(m);
        } else if (!c.broken) {
          c.broken = BreakOf(*c.full, *m, joined);
        }
        break;
      }
      default:  // a Copy stands alone
        break;
    }
  }
  if (!segments.empty()) {
    // By generation: a segment joins by its logs, whenever it was uploaded
    // (one uploaded again after an archiver's restart comes later).
    std::stable_sort(segments.begin(), segments.end(), [](const Manifest* a, const Manifest* b) {
      return a->low_generation() < b->low_generation();
    });
    for (size_t i = 0; i < chains.size(); ++i) {
      const uint32_t through = i + 1 < chains.size() ? chains[i + 1].full->high_generation()
                                                     : std::numeric_limits<uint32_t>::max();
      if (!chains[i].broken) ExtendWithArchive(chains[i], segments, through);
    }
  }
  return chains;
}

absl::StatusOr<Manifest> BaseFor(const std::vector<Chain>& chains, BackupType type,
                                 const std::string& unit) {
  if (chains.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", unit, " has no Full backup in this repository: take a Full before ",
                     BackupTypeTitle(type) == "Incremental" ? "an " : "a ", BackupTypeTitle(type)));
  }
  const Chain& c = chains.back();
  if (type == dagvault::v1::DIFFERENTIAL) return *c.full;
  if (c.broken) {
    return absl::FailedPreconditionError(absl::StrCat("unit ", unit, ": the newest chain (Full ",
                                                      c.full->id(), ") ", c.broken->reason,
                                                      "; take a Full"));
  }
  return c.incrementals.empty() ? *c.full : *c.incrementals.back();
}

absl::StatusOr<std::vector<Manifest>> RestoreChain(const std::vector<Chain>& chains,
                                                   uint32_t to_generation,
                                                   const std::string& unit) {
  if (chains.empty()) {
    return absl::NotFoundError(
        absl::StrCat("unit ", unit, " has no Full backup in this repository"));
  }
  const Chain* chain = &chains.back();
  if (to_generation != 0) {
    chain = nullptr;
    for (auto it = chains.rbegin(); it != chains.rend(); ++it) {
      if (it->full->high_generation() <= to_generation) {
        chain = &*it;
        break;
      }
    }
    if (chain == nullptr) {
      return absl::NotFoundError(absl::StrCat("unit ", unit, ": generation ", Gen(to_generation),
                                              " is before the first Full (",
                                              chains.front().full->id(), ", high generation ",
                                              Gen(chains.front().full->high_generation()), ")"));
    }
  }
  const uint32_t target = to_generation != 0 ? to_generation : chain->high_generation();
  std::vector<Manifest> pieces = {*chain->full};
  if (target > chain->full->high_generation()) {
    const Manifest* diff = nullptr;
    for (const Manifest* d : chain->differentials) {
      if (d->high_generation() >= target) {
        diff = d;
        break;
      }
    }
    if (diff != nullptr) {
      pieces.push_back(*diff);
    } else {
      for (const Manifest* inc : chain->incrementals) {
        pieces.push_back(*inc);
        if (inc->high_generation() >= target) break;
      }
      for (const Manifest* segment : chain->archived) {
        if (pieces.back().high_generation() >= target) break;
        pieces.push_back(*segment);
      }
      if (pieces.back().high_generation() < target && chain->archive_broken) {
        return absl::FailedPreconditionError(
            absl::StrCat("unit ", unit, ": no restore to generation ", Gen(target),
                         " through the log archive of Full ", chain->full->id(), ": ",
                         chain->archive_broken->reason, "; restore to generation ",
                         Gen(chain->archive_broken->generation - 1), " or earlier"));
      }
      if (pieces.back().high_generation() < target) {
        if (chain->broken) {
          return absl::FailedPreconditionError(absl::StrCat(
              "unit ", unit, ": no restore to generation ", Gen(target),
              " through the chain of Full ", chain->full->id(), ": ", chain->broken->reason,
              "; restore to generation ", Gen(chain->broken->generation - 1), " or earlier"));
        }
        return absl::NotFoundError(absl::StrCat("unit ", unit, ": generation ", Gen(target),
                                                " is past the chain's last ",
                                                chain->archived.empty() ? "backed-up" : "archived",
                                                " generation ", Gen(chain->high_generation())));
      }
    }
  }
  if (to_generation == 0 && (chain->broken || chain->archive_broken)) {
    // The newest restore point is behind a break: say so rather than
    // quietly restoring an older point.
    const ChainBreak& at = chain->broken ? *chain->broken : *chain->archive_broken;
    return absl::FailedPreconditionError(absl::StrCat(
        "unit ", unit, ": the newest chain (Full ", chain->full->id(), ") ",
        chain->broken ? "" : "has a log archive that stops joining it: ", at.reason,
        "; restore to generation ", Gen(at.generation - 1), " or earlier with --to-generation"));
  }
  RETURN_IF_ERROR(CheckChain(pieces));
  return pieces;
}

absl::Status CheckChain(const std::vector<Manifest>& pieces) {
  if (pieces.empty()) return absl::InvalidArgumentError("an empty chain");
  const Manifest& first = pieces.front();
  if (first.type() == dagvault::v1::COPY && pieces.size() == 1) return absl::OkStatus();
  if (first.type() != dagvault::v1::FULL) {
    return absl::InvalidArgumentError(
        absl::StrCat("a chain starts with a Full, not with ", Describe(first)));
  }
  RETURN_IF_ERROR(CheckOwnLogs(first));
  for (size_t i = 1; i < pieces.size(); ++i) {
    const Manifest& m = pieces[i];
    if (m.unit() != first.unit()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Describe(m), " is of unit ", m.unit(), ", not ", first.unit()));
    }
    const bool differential = m.type() == dagvault::v1::DIFFERENTIAL;
    if (differential && pieces.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("a Differential chain is a Full and one Differential; ", Describe(m),
                       " is one of ", pieces.size() - 1, " pieces after the Full"));
    }
    if (!differential && m.type() != dagvault::v1::INCREMENTAL &&
        m.type() != dagvault::v1::LOG_ARCHIVE) {
      return absl::InvalidArgumentError(
          absl::StrCat(Describe(m), " cannot follow a Full in a chain"));
    }
    if (m.type() == dagvault::v1::INCREMENTAL &&
        pieces[i - 1].type() == dagvault::v1::LOG_ARCHIVE) {
      return absl::InvalidArgumentError(absl::StrCat(
          Describe(m), " follows a log archive segment: a chain's Incrementals come first"));
    }
    RETURN_IF_ERROR(CheckJoin(pieces[i - 1], m));
  }
  return absl::OkStatus();
}

dagvault::v1::Manifest ChainSummaryOf(const dagvault::v1::Manifest& manifest) {
  dagvault::v1::Manifest summary = manifest;
  for (auto& f : *summary.mutable_files()) {
    f.clear_chunks();
    f.clear_block_map();
  }
  return summary;
}

}  // namespace dagvault::repository
