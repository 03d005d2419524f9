// One node's copies as its agent last reported them, kept by Topology in
// their wire form. A parsed CopyStatus took 376 bytes of heap (its three
// names each a string of its own, two empty maps); its wire form takes
// about 40 in the benchmark, whose names are 5 and 6 characters, and the
// entry beside it 24. At 10,000 agents with 30 copies each, that is 113 MB
// against about 19 (docs/ha.md, "Scale").
//
// What the report path compares at every report (unit, role, state) is kept
// beside the bytes, so only the readers that want whole copies (source
// selection, `status`) decode them. The wire form loses nothing: a field
// this coordinator does not know survives a round trip too.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "dagvault/v1/mailstored.pb.h"

namespace dagvault::coordinator {

class StoredCopies {
 public:
  using CopyList = google::protobuf::RepeatedPtrField<dagvault::v1::CopyStatus>;

  struct Entry {
    // The unit's name, owned by whoever indexes units (Topology's map of
    // units to nodes), which keeps it while this entry exists.
    const std::string* unit = nullptr;
    dagvault::v1::Role role = dagvault::v1::ROLE_UNSPECIFIED;
    dagvault::v1::CopyState state = dagvault::v1::COPY_STATE_UNSPECIFIED;
    uint32_t offset = 0;  // of its wire form in the node's bytes
    uint32_t size = 0;
  };

  // Replaces the copies with `copies`; units[i] holds copies[i].unit().
  // The memory held is exactly what they need (nothing kept from the
  // previous report).
  void Assign(const CopyList& copies, const std::vector<const std::string*>& units);

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const Entry& operator[](size_t i) const { return entries_[i]; }
  std::vector<Entry>::const_iterator begin() const { return entries_.begin(); }
  std::vector<Entry>::const_iterator end() const { return entries_.end(); }

  // The copy of `entry` (one of this node's) as it was reported.
  dagvault::v1::CopyStatus Decode(const Entry& entry) const;
  void DecodeInto(const Entry& entry, dagvault::v1::CopyStatus* out) const;

 private:
  std::string wire_;  // every copy's wire form, back to back
  std::vector<Entry> entries_;
};

// Decodes one copy's wire form into *out. Bytes that do not decode (which
// would mean the coordinator's own memory is damaged: it wrote them) give a
// copy of `unit` in state FAILED whose message says so, so that it never
// qualifies as a backup source, rather than a copy with whatever fields
// decoded before the fault.
void DecodeStoredCopy(absl::string_view wire, const std::string& unit,
                      dagvault::v1::CopyStatus* out);

}  // namespace dagvault::coordinator
