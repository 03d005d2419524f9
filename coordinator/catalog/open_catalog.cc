#include "coordinator/catalog/open_catalog.h"

#include <regex>

#include "absl/strings/match.h"
#include "coordinator/catalog/postgres_catalog.h"
#include "coordinator/catalog/sqlite_catalog.h"

namespace dagvault::coordinator {

bool IsPostgresCatalog(const std::string& location) {
  // A URI, or a key=value string: it starts with a keyword and "=" (a
  // file path never does).
  static const std::regex kKeyValue(R"(^\s*[A-Za-z_]+\s*=)");
  return absl::StartsWith(location, "postgresql://") || absl::StartsWith(location, "postgres://") ||
         std::regex_search(location, kKeyValue);
}

absl::StatusOr<std::unique_ptr<Catalog>> OpenCatalog(const std::string& location) {
  if (IsPostgresCatalog(location)) {
    auto c = PostgresCatalog::Open(location);
    if (!c.ok()) return c.status();
    return std::unique_ptr<Catalog>(std::move(*c));
  }
  auto c = SqliteCatalog::Open(location);
  if (!c.ok()) return c.status();
  return std::unique_ptr<Catalog>(std::move(*c));
}

std::string CatalogForDisplay(const std::string& location) {
  if (!IsPostgresCatalog(location)) return location;
  // key=value: password=secret, password = 'quoted \' secret', or
  // pass\ word with a backslash escape; anywhere, a URI's user:secret@
  // (also one given as a dbname); in a URI's query, password=... up to
  // the next & (a URI percent-encodes any & of its own).
  const bool uri = absl::StartsWith(location, "postgres");
  static const std::regex kKeyValue(R"(password\s*=\s*('([^'\\]|\\.)*'?|([^\s\\]|\\.)*))");
  static const std::regex kQuery(R"(([?&]password=)[^&]*)");
  static const std::regex kUserInfo(R"((postgres(ql)?://[^:/@\s]*):[^@\s]*@)");
  std::string out = uri ? std::regex_replace(location, kQuery, "$1***")
                        : std::regex_replace(location, kKeyValue, "password=***");
  return std::regex_replace(out, kUserInfo, "$1:***@");
}

}  // namespace dagvault::coordinator
