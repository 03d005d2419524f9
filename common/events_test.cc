#include "common/events.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"

namespace dagvault::events {
namespace {

using ::testing::HasSubstr;

constexpr EventId kAll[] = {EventId::kJobFailed,        EventId::kRpoBreached,
                            EventId::kRpoRecovered,     EventId::kChainBroken,
                            EventId::kLeaseExpired,     EventId::kCopySkipped,
                            EventId::kAccessRefused,    EventId::kAdminAction,
                            EventId::kAuditWriteFailed, EventId::kVerificationFailed};

TEST(Events, EveryEventHasItsOwnCodeNameAndMessageId) {
  std::set<std::string> codes, names, ids;
  for (EventId id : kAll) {
    codes.insert(Code(id));
    names.insert(std::string(Name(id)));
    ids.insert(std::string(MessageId(id)));
    EXPECT_EQ(MessageId(id).size(), 32u) << Code(id);
  }
  EXPECT_EQ(codes.size(), std::size(kAll));
  EXPECT_EQ(names.size(), std::size(kAll));
  EXPECT_EQ(ids.size(), std::size(kAll));
  EXPECT_EQ(Code(EventId::kJobFailed), "DV1001");
  EXPECT_EQ(Name(EventId::kLeaseExpired), "lease_expired");
}

TEST(Events, JournalDatagramCarriesTheIdAndFieldsAndFramesMultiLineValues) {
  const std::string d =
      JournalDatagram(spdlog::level::err, EventId::kJobFailed, "job j1 failed",
                      {{"unit", "DB02"}, {"job", "j1"}, {"reason", "line one\nline two"}}, "test");
  EXPECT_THAT(d, HasSubstr("MESSAGE=job j1 failed\n"));
  EXPECT_THAT(d, HasSubstr("PRIORITY=3\n"));
  EXPECT_THAT(d, HasSubstr(absl::StrCat("MESSAGE_ID=", MessageId(EventId::kJobFailed), "\n")));
  EXPECT_THAT(d, HasSubstr("DAGVAULT_EVENT=DV1001\n"));
  EXPECT_THAT(d, HasSubstr("DAGVAULT_EVENT_NAME=job_failed\n"));
  EXPECT_THAT(d, HasSubstr("DAGVAULT_UNIT=DB02\n"));
  EXPECT_THAT(d, HasSubstr("SYSLOG_IDENTIFIER=test\n"));
  // A value with a newline: the name, a newline, its length in 8 bytes
  // little-endian, the value, a newline.
  std::string framed = "DAGVAULT_REASON\n";
  framed += std::string("\x11\0\0\0\0\0\0\0", 8);
  framed += "line one\nline two\n";
  EXPECT_THAT(d, HasSubstr(framed));
}

TEST(Events, EmitSendsToTheJournalSocketItIsGiven) {
  char dir_template[] = "/tmp/dagvault-events-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string path = absl::StrCat(dir_template, "/journal.sock");
  const int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  setenv("DAGVAULT_JOURNAL_SOCKET", path.c_str(), 1);
  Emit("test", spdlog::level::warn, EventId::kLeaseExpired, "the lease of DB02 expired",
       {{"unit", "DB02"}, {"node", "node2"}});
  unsetenv("DAGVAULT_JOURNAL_SOCKET");
  char buf[4096];
  const ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  close(fd);
  unlink(path.c_str());
  rmdir(dir_template);
  ASSERT_GT(n, 0);
  const std::string got(buf, static_cast<size_t>(n));
  EXPECT_THAT(got, HasSubstr("DAGVAULT_EVENT=DV1005\n"));
  EXPECT_THAT(got, HasSubstr("DAGVAULT_NODE=node2\n"));
  EXPECT_THAT(got, HasSubstr("PRIORITY=4\n"));
}

}  // namespace
}  // namespace dagvault::events
