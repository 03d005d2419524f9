#include "mailstore/server/truncation.h"

#include "absl/strings/str_format.h"

namespace dagvault::mailstore {

TruncationDecision DecideTruncation(const TruncationInputs& in) {
  TruncationDecision d;
  // Rule 1: at or below the high generation of a verified Full or
  // Incremental backup.
  d.through = in.backup_high;
  d.held_by = in.backup_high == 0
                  ? "rule 1: no verified Full or Incremental backup yet"
                  : absl::StrFormat("rule 1: the last Full or Incremental backup ends at 0x%08X",
                                    in.backup_high);
  auto limit = [&](Generation g, std::string why) {
    if (g < d.through) {
      d.through = g;
      d.held_by = std::move(why);
    }
  };
  // Rule 2, with the checkpoint depth kept regardless: below the active
  // copy's checkpoint generation.
  const uint64_t kept = 1ull + in.checkpoint_depth;
  limit(in.checkpoint > kept ? static_cast<Generation>(in.checkpoint - kept) : 0,
        absl::StrFormat("rule 2: the active copy's checkpoint is in generation 0x%08X, and %u "
                        "generation(s) below it are kept",
                        in.checkpoint, in.checkpoint_depth));
  // Rules 3 and 4: every non-lagged copy has replayed it; every lagged copy
  // has copied and inspected it. A copy not heard from holds everything.
  for (const auto& c : in.copies) {
    if (!c.heard) {
      limit(0, absl::StrFormat("rule %d: the copy on %s has not reported its progress",
                               c.lagged ? 4 : 3, c.node));
    } else if (c.lagged) {
      limit(c.inspected, absl::StrFormat("rule 4: the lagged copy on %s has inspected only "
                                         "through 0x%08X",
                                         c.node, c.inspected));
    } else {
      limit(c.replayed, absl::StrFormat("rule 3: the copy on %s has replayed only through 0x%08X",
                                        c.node, c.replayed));
    }
  }
  return d;
}

}  // namespace dagvault::mailstore
