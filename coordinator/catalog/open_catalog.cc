#include "coordinator/catalog/open_catalog.h"

#include <regex>

#include "absl/strings/match.h"
#include "coordinator/catalog/postgres_catalog.h"
#include "coordinator/catalog/sqlite_catalog.h"

namespace dagvault::coordinator {

bool IsPostgresCatalog(const std::string& location) {
  return absl::StartsWith(location, "postgresql://") || absl::StartsWith(location, "postgres://") ||
         absl::StrContains(location, "dbname=");
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
  // key=value: password=secret or password='quoted secret'; a URI:
  // scheme://user:secret@host and ?password=secret.
  static const std::regex kKeyValue(R"(password\s*=\s*('([^'\\]|\\.)*'|[^\s&]*))");
  static const std::regex kUserInfo(R"(^(postgres(ql)?://[^:/@]*):[^@/]*@)");
  std::string out = std::regex_replace(location, kKeyValue, "password=***");
  return std::regex_replace(out, kUserInfo, "$1:***@");
}

}  // namespace dagvault::coordinator
