// Status propagation macros, in the style of Kudu and Abseil's internal ones.
//
//   RETURN_IF_ERROR(file.Sync());
//   ASSIGN_OR_RETURN(auto header, ReadHeader(path));
//   RETURN_IF_ERROR(Annotate(status, "E00.chk"));
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

#define DAGVAULT_CONCAT_INNER_(a, b) a##b
#define DAGVAULT_CONCAT_(a, b) DAGVAULT_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                                       \
  do {                                                              \
    ::absl::Status dagvault_status_ = ::dagvault::ToStatus((expr)); \
    if (!dagvault_status_.ok()) return dagvault_status_;            \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, rexpr) \
  DAGVAULT_ASSIGN_OR_RETURN_IMPL_(DAGVAULT_CONCAT_(dagvault_statusor_, __LINE__), lhs, rexpr)

#define DAGVAULT_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                    \
  if (!tmp.ok()) return std::move(tmp).status();         \
  lhs = std::move(tmp).value()

namespace dagvault {

inline const absl::Status& ToStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& ToStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

// Returns `status` with "context: " put in front of its message, keeping the
// code. Used to name the file, page or generation an error concerns.
inline absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

}  // namespace dagvault
