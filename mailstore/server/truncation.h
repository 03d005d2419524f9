// The log truncation rules of DESIGN.md §5, as one pure decision: which
// generations may be deleted on every copy of a unit, and which rule holds
// the rest back (so an operator can see why logs are not going away).
#pragma once

#include <string>
#include <vector>

#include "mailstore/format/types.h"

namespace dagvault::mailstore {

struct TruncationInputs {
  // Rule 1: the high generation of the newest verified Full or Incremental
  // backup (0: none yet).
  Generation backup_high = 0;
  // Rule 2: the active copy's checkpoint generation, and the generations
  // below it that are kept regardless.
  Generation checkpoint = 0;
  uint32_t checkpoint_depth = 1;
  // Rules 3 and 4: every other copy's progress, as it last reported it.
  struct Copy {
    std::string node;
    bool lagged = false;
    bool heard = false;  // reported since the active's daemon started
    Generation inspected = 0;
    Generation replayed = 0;
  };
  std::vector<Copy> copies;
};

struct TruncationDecision {
  // Generations up to and including this one may go (0: none).
  Generation through = 0;
  // The rule that stops truncation at `through`, in words.
  std::string held_by;
};

TruncationDecision DecideTruncation(const TruncationInputs& inputs);

}  // namespace dagvault::mailstore
