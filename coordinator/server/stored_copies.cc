#include "coordinator/server/stored_copies.h"

#include "absl/strings/str_cat.h"

namespace dagvault::coordinator {

namespace v1 = dagvault::v1;

void StoredCopies::Assign(const CopyList& copies, const std::vector<const std::string*>& units) {
  // Fresh containers of the exact size, swapped in: assigning into the old
  // ones would keep their capacity, sized by the node's largest report.
  std::vector<Entry> entries;
  entries.reserve(static_cast<size_t>(copies.size()));
  size_t total = 0;
  for (int i = 0; i < copies.size(); ++i) {
    const v1::CopyStatus& c = copies[i];
    Entry e;
    e.unit = units[static_cast<size_t>(i)];
    e.role = c.role();
    e.state = c.state();
    e.offset = static_cast<uint32_t>(total);
    e.size = static_cast<uint32_t>(c.ByteSizeLong());  // cached for the write below
    total += e.size;
    entries.push_back(e);
  }
  std::string wire(total, '\0');
  auto* out = reinterpret_cast<uint8_t*>(wire.data());
  for (const v1::CopyStatus& c : copies) out = c.SerializeWithCachedSizesToArray(out);
  wire_.swap(wire);
  entries_.swap(entries);
}

v1::CopyStatus StoredCopies::Decode(const Entry& entry) const {
  v1::CopyStatus c;
  DecodeInto(entry, &c);
  return c;
}

void StoredCopies::DecodeInto(const Entry& entry, v1::CopyStatus* out) const {
  DecodeStoredCopy(absl::string_view(wire_).substr(entry.offset, entry.size), *entry.unit, out);
}

void DecodeStoredCopy(absl::string_view wire, const std::string& unit, v1::CopyStatus* out) {
  if (out->ParseFromArray(wire.data(), static_cast<int>(wire.size()))) return;
  out->Clear();
  out->set_unit(unit);
  out->set_state(v1::FAILED);
  out->set_message(absl::StrCat("the coordinator's stored report of this copy (", wire.size(),
                                " bytes) does not decode; it qualifies again with the node's "
                                "next report"));
}

}  // namespace dagvault::coordinator
