// An item-size mix for load generation: "4096" or "4096:70,76800:25,2097152:5"
// (size in bytes, optionally with k/m suffix, and a weight).
#pragma once

#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dagvault::mailstore {

class SizeMix {
 public:
  static absl::StatusOr<SizeMix> Parse(const std::string& spec);
  size_t Pick(std::mt19937_64& rng) const;
  double MeanSize() const;
  std::string ToString() const;

 private:
  std::vector<std::pair<size_t, double>> entries_;  // size, cumulative weight
  double total_ = 0;
};

// Fills `out` with `size` bytes that compress like mail: mostly text with
// occasional runs of random (attachment-like) bytes.
void FillMailLikeBytes(std::mt19937_64& rng, size_t size, std::string* out);

}  // namespace dagvault::mailstore
