// StoredCopies: what a node reported comes back whole, every field of it,
// and bytes that do not decode never pass for a healthy copy.
#include "coordinator/server/stored_copies.h"

#include <google/protobuf/util/message_differencer.h>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using ::google::protobuf::FieldDescriptor;
using ::testing::HasSubstr;

// Sets every field CopyStatus has to something other than its default,
// finding them by reflection: a field added later is covered without
// this test changing, and a field of a kind it cannot fill fails it.
void Fill(const std::string& unit, int seed, v1::CopyStatus* out) {
  v1::CopyStatus& c = *out;
  const auto* d = c.GetDescriptor();
  const auto* r = c.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    const int v = seed * 100 + i + 1;
    if (f->is_map()) {
      auto* entry = r->AddMessage(&c, f);
      const auto* ed = entry->GetDescriptor();
      entry->GetReflection()->SetString(entry, ed->map_key(), "node" + std::to_string(v));
      entry->GetReflection()->SetUInt64(entry, ed->map_value(), static_cast<uint64_t>(v));
      continue;
    }
    ASSERT_FALSE(f->is_repeated()) << "Fill cannot fill " << f->name();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        r->SetString(&c, f, f->name() == "unit" ? unit : f->name() + std::to_string(v));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        r->SetUInt32(&c, f, static_cast<uint32_t>(v));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        r->SetUInt64(&c, f, static_cast<uint64_t>(v) << 33);
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->SetInt64(&c, f, -static_cast<int64_t>(v));
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        r->SetEnum(&c, f, f->enum_type()->value(f->enum_type()->value_count() - 1));
        break;
      default:
        ADD_FAILURE() << "Fill cannot fill " << f->name() << " (" << f->cpp_type_name() << ")";
    }
  }
}

TEST(StoredCopies, EveryFieldOfEveryCopyComesBackAsReported) {
  StoredCopies::CopyList reported;
  const std::vector<std::string> names = {"DB01", "Mailbox Database 0123456789", "DB03"};
  std::vector<const std::string*> units;
  for (size_t i = 0; i < names.size(); ++i) {
    Fill(names[i], static_cast<int>(i), reported.Add());
    units.push_back(&names[i]);
  }
  // A field this coordinator does not know (a newer agent's) survives too.
  reported[1].GetReflection()->MutableUnknownFields(&reported[1])->AddVarint(999, 7);
  reported[0].set_role(v1::ACTIVE);
  reported[0].set_state(v1::MOUNTED);
  reported[2].set_role(v1::PASSIVE);
  reported[2].set_state(v1::FAILED);

  StoredCopies stored;
  stored.Assign(reported, units);
  ASSERT_EQ(stored.size(), 3u);
  for (size_t i = 0; i < names.size(); ++i) {
    const StoredCopies::Entry& e = stored[i];
    EXPECT_EQ(e.unit, &names[i]);
    EXPECT_EQ(e.role, reported[static_cast<int>(i)].role());
    EXPECT_EQ(e.state, reported[static_cast<int>(i)].state());
    const v1::CopyStatus back = stored.Decode(e);
    EXPECT_TRUE(
        google::protobuf::util::MessageDifferencer::Equals(back, reported[static_cast<int>(i)]))
        << "copy " << i << ": " << back.ShortDebugString();
    // Byte for byte, unknown fields included.
    EXPECT_EQ(back.SerializeAsString(), reported[static_cast<int>(i)].SerializeAsString());
  }
  const v1::CopyStatus with_unknown = stored.Decode(stored[1]);
  EXPECT_EQ(with_unknown.GetReflection()->GetUnknownFields(with_unknown).field_count(), 1);
}

TEST(StoredCopies, ANewReportReplacesEveryCopyOfTheLast) {
  const std::string db1 = "DB01", db2 = "DB02";
  StoredCopies::CopyList first;
  Fill(db1, 1, first.Add());
  Fill(db2, 2, first.Add());
  StoredCopies stored;
  stored.Assign(first, {&db1, &db2});

  StoredCopies::CopyList second;
  v1::CopyStatus* c = second.Add();
  c->set_unit(db2);
  c->set_state(v1::HEALTHY);
  c->set_copy_queue(4);
  stored.Assign(second, {&db2});
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].unit, &db2);
  EXPECT_EQ(stored[0].state, v1::HEALTHY);
  EXPECT_EQ(stored.Decode(stored[0]).SerializeAsString(), c->SerializeAsString());

  stored.Assign(StoredCopies::CopyList(), {});
  EXPECT_TRUE(stored.empty());
}

TEST(StoredCopies, BytesThatDoNotDecodeGiveAFailedCopyThatSaysSo) {
  // A length-delimited field (unit) claiming 100 bytes where 2 follow.
  const std::string damaged("\x0a\x64\x44\x42", 4);
  v1::CopyStatus out;
  out.set_state(v1::HEALTHY);
  out.set_copy_queue(3);
  DecodeStoredCopy(damaged, "DB02", &out);
  EXPECT_EQ(out.unit(), "DB02");
  EXPECT_EQ(out.state(), v1::FAILED);
  EXPECT_EQ(out.copy_queue(), 0u);  // nothing of what was there before
  EXPECT_THAT(out.message(), HasSubstr("stored report of this copy (4 bytes) does not decode"));
}

}  // namespace
}  // namespace dagvault::coordinator
