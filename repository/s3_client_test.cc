// The S3 backend's failure paths, against a small S3 stand-in served by
// cpp-httplib on 127.0.0.1 (radosgw cannot be told to fail on cue): retries
// on 5xx, 429 and refused connections, bounded in time; a PUT whose
// response was lost is never turned into an overwrite; the URL and the
// credentials, and that no secret reaches an error message.
#include "repository/s3_client.h"

#include <httplib.h>
#include <sys/stat.h>

#include <atomic>
#include <functional>
#include <map>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repository/s3_object_store.h"

namespace dagvault::repository {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "very-secret-key-that-must-not-leak";

// An S3 stand-in: a bucket "b" in memory; `script`, when set, answers
// first (returning true when it did).
class FakeS3 {
 public:
  using Script = std::function<bool(const httplib::Request&, httplib::Response&)>;
  FakeS3() {
    (void)WriteFileAtomically(
        creds_.Sub("credentials"),
        absl::StrCat("aws_access_key_id = AKIDTEST\naws_secret_access_key = ", kSecret, "\n"),
        0600);
    auto handle = [this](const httplib::Request& req, httplib::Response& res) {
      ++requests;
      if (!script || !script(req, res)) Serve(req, res);
      // cpp-httplib (0.11) would cut whatever body a handler sets to the
      // request's Range, whatever its status (a 404's XML went out as a
      // 416; a 200 went out cut yet still a 200). The stand-in answers
      // ranges itself, as S3 does.
      const_cast<httplib::Request&>(req).ranges.clear();  // the server's own object
    };
    server_.Get(".*", handle);
    server_.Put(".*", handle);
    server_.Delete(".*", handle);
    server_.Post(".*", handle);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeS3() {
    server_.stop();
    thread_.join();
  }
  // Credentials from a file of the test's own: the test binary's
  // environment carries the real S3 server's, for the other suites.
  std::string Url() const {
    return absl::StrCat("s3://b/p?endpoint=http://127.0.0.1:", port_,
                        "&region=test&credentials=", creds_.Sub("credentials"));
  }

  Script script;
  std::atomic<int> requests{0};
  std::map<std::string, std::string> objects;  // path → body

 private:
  void Serve(const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/b") {  // the bucket: HEAD, ?versioning
      res.status = 200;
      if (req.has_param("versioning")) res.set_content("<VersioningConfiguration/>", "text/xml");
      return;
    }
    auto it = objects.find(req.path);
    if (req.method == "PUT") {
      if (req.get_header_value("If-None-Match") == "*" && it != objects.end()) {
        res.status = 412;
        return;
      }
      objects[req.path] = req.body;
      res.status = 200;
      return;
    }
    if (req.method == "DELETE") {
      objects.erase(req.path);
      res.status = 204;
      return;
    }
    if (it == objects.end()) {
      res.status = 404;
      return;
    }
    std::string raw;
    absl::Base64Unescape(Md5Base64(it->second), &raw);
    res.set_header("ETag", absl::StrCat("\"", absl::BytesToHexString(raw), "\""));
    res.set_header("Last-Modified", "Thu, 03 Dec 2026 10:00:00 GMT");
    if (req.ranges.empty()) {
      res.set_content(it->second, "application/octet-stream");
      res.status = 200;
      return;
    }
    const uint64_t size = it->second.size();
    const auto [from, to] = req.ranges.front();  // -1: not given
    const uint64_t first = from < 0 ? size - std::min<uint64_t>(to, size) : from;
    const uint64_t last = from < 0 || to < 0 ? size - 1 : std::min<uint64_t>(to, size - 1);
    if (first >= size) {
      res.status = 416;
      res.set_header("Content-Range", absl::StrCat("bytes */", size));
      return;
    }
    res.set_content(it->second.substr(first, last - first + 1), "application/octet-stream");
    res.set_header("Content-Range", absl::StrCat("bytes ", first, "-", last, "/", size));
    res.status = 206;
  }

  ::dagvault::testing::TempDir creds_{"fake-s3"};
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

class S3ClientTest : public ::testing::Test {
 protected:
  static S3RetryPolicy Quick(absl::Duration give_up = absl::Seconds(2)) {
    S3RetryPolicy p;
    p.first_backoff = absl::Milliseconds(20);
    p.max_backoff = absl::Milliseconds(200);
    p.give_up_after = give_up;
    return p;
  }
  S3Client Client(const FakeS3& fake, S3RetryPolicy retry = Quick()) {
    const S3Location location = *ParseS3Location(fake.Url());
    return S3Client(location, *LoadS3Credentials(location.credentials_file), retry);
  }
};

TEST_F(S3ClientTest, A503AndA429AreRetriedAndTheThirdAttemptAnswers) {
  FakeS3 fake;
  std::atomic<int> calls{0};
  fake.script = [&](const httplib::Request&, httplib::Response& res) {
    const int n = calls++;
    if (n == 0) res.status = 503;
    if (n == 1) res.status = 429;
    return n < 2;
  };
  fake.objects["/b/p/k"] = "value";
  S3Client client = Client(fake);
  S3Request get;
  get.key = "p/k";
  auto r = client.Send(get, "object k");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "value");
  EXPECT_EQ(r->attempts, 3);
  EXPECT_EQ(client.counters().retries.load(), 2u);
}

TEST_F(S3ClientTest, AServerThatKeepsFailingIsGivenUpWithinTheBoundAndNamed) {
  FakeS3 fake;
  fake.script = [](const httplib::Request&, httplib::Response& res) {
    res.status = 500;
    res.set_content("<Error><Code>InternalError</Code><Message>disk on fire</Message></Error>",
                    "text/xml");
    return true;
  };
  S3Client client = Client(fake, Quick(absl::Seconds(1)));
  S3Request get;
  get.key = "p/k";
  const absl::Time start = absl::Now();
  auto r = client.Send(get, "s3://b/p/k");
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  ASSERT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_THAT(std::string(r.status().message()),
              AllOf(HasSubstr("s3://b/p/k"), HasSubstr("gave up after"),
                    HasSubstr("InternalError: disk on fire"), Not(HasSubstr(kSecret))));
  EXPECT_GE(fake.requests.load(), 3);
  // A 404 is an answer, not a failure: no retry.
  fake.script = nullptr;
  const int before = fake.requests;
  auto missing = client.Send(get, "s3://b/p/k");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(fake.requests - before, 1);
}

TEST_F(S3ClientTest, ARefusedConnectionIsRetriedThenNamed) {
  FakeS3 unused;  // for its credentials file
  auto location = ParseS3Location(unused.Url());
  ASSERT_TRUE(location.ok());
  location->endpoint = "http://127.0.0.1:1";  // nothing listens there
  S3Client client(*location, *LoadS3Credentials(location->credentials_file),
                  Quick(absl::Milliseconds(300)));
  S3Request get;
  get.key = "p/k";
  auto r = client.Send(get, "s3://b/p/k");
  ASSERT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_THAT(std::string(r.status().message()),
              AllOf(HasSubstr("s3://b/p/k"), HasSubstr("gave up after"), Not(HasSubstr(kSecret))));
  EXPECT_GE(client.counters().retries.load(), 1u);
}

// The PUT landed but its answer was lost (a 503 here): the retry, with
// If-None-Match, finds the object; its ETag is the MD5 of what was sent, so
// it is this writer's own, and the put succeeds. Other bytes under that
// name are AlreadyExists, and nothing is overwritten either way.
TEST_F(S3ClientTest, APutWhoseAnswerWasLostIsNeverTurnedIntoAnOverwrite) {
  FakeS3 fake;
  auto store = S3ObjectStore::Open(fake.Url(), Quick());
  ASSERT_TRUE(store.ok()) << store.status();
  bool lost_once = false;
  fake.script = [&](const httplib::Request& req, httplib::Response& res) {
    if (req.method == "PUT" && req.path == "/b/p/packs/aa/pack" && !lost_once) {
      lost_once = true;
      fake.objects[req.path] = req.body;  // stored...
      res.status = 503;                   // ...but the answer says otherwise
      return true;
    }
    return false;
  };
  ASSERT_TRUE((*store)->PutIfAbsent("packs/aa/pack", "the pack's bytes").ok());
  EXPECT_EQ(fake.objects["/b/p/packs/aa/pack"], "the pack's bytes");

  fake.objects["/b/p/manifests/m.mf"] = "someone else's";
  const absl::Status taken = (*store)->PutIfAbsent("manifests/m.mf", "mine");
  EXPECT_EQ(taken.code(), absl::StatusCode::kAlreadyExists) << taken;
  EXPECT_THAT(std::string(taken.message()), HasSubstr("s3://b/p/manifests/m.mf"));
  EXPECT_EQ(fake.objects["/b/p/manifests/m.mf"], "someone else's");
}

// A ranged read lands in the caller's buffer as it arrives (a restore opens
// its chunks there). Every answer a server may give is handled: a 206; a
// 200 of the whole object (a server that ignored the range), cut here; a
// 206 cut off mid-body, sent again from the buffer's start; a 206 longer
// than asked, refused with the object's name; a 404, NotFound.
TEST_F(S3ClientTest, ARangedReadLandsInTheCallersBufferWhateverTheServerAnswers) {
  FakeS3 fake;
  auto store = S3ObjectStore::Open(fake.Url(), Quick());
  ASSERT_TRUE(store.ok()) << store.status();
  std::string pack(1 << 20, '\0');
  for (size_t i = 0; i < pack.size(); ++i) pack[i] = static_cast<char>((i * 131) >> 3);
  fake.objects["/b/p/packs/aa/pack"] = pack;
  const uint64_t offset = 1000, length = 300000;
  const absl::string_view want = absl::string_view(pack).substr(offset, length);
  AlignedBuffer buffer;
  auto read = [&]() -> absl::StatusOr<std::string> {
    auto got = (*store)->GetRangeInto("packs/aa/pack", offset, length, &buffer);
    if (!got.ok()) return got.status();
    EXPECT_GE(got->data(), buffer.data());
    EXPECT_LE(got->data() + got->size(), buffer.data() + buffer.size());
    return std::string(got->data(), got->size());
  };

  auto plain = read();
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_TRUE(*plain == want);
  EXPECT_EQ(buffer.size(), length);
  // The 206 went straight into the caller's span, not through the string.
  S3Client client = Client(fake);
  S3Request get;
  get.key = "p/packs/aa/pack";
  get.headers.emplace_back("Range", absl::StrCat("bytes=", offset, "-", offset + length - 1));
  std::string into(length, '\0');
  get.sink = absl::MakeSpan(into);
  auto direct = client.Send(get, "the pack");
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_EQ(direct->status, 206);
  EXPECT_EQ(direct->sunk, length);
  EXPECT_TRUE(direct->body.empty());
  EXPECT_TRUE(into == want);
  // A range past the object's end is cut there, and so is the buffer.
  auto tail = (*store)->GetRangeInto("packs/aa/pack", pack.size() - 10, 100, &buffer);
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_TRUE(absl::string_view(tail->data(), tail->size()) ==
              absl::string_view(pack).substr(pack.size() - 10));
  EXPECT_EQ(buffer.size(), 10u);

  enum class Answer { kWhole, kCutOff, kTooLong, kWrongRange, kMissing } answer = Answer::kWhole;
  int cut_off = 0;
  fake.script = [&](const httplib::Request& req, httplib::Response& res) {
    if (req.method != "GET" || req.path != "/b/p/packs/aa/pack") return false;
    switch (answer) {
      case Answer::kWhole:
        res.status = 200;
        res.set_content(pack, "application/octet-stream");
        return true;
      case Answer::kCutOff:
        if (cut_off++ > 0) return false;  // the second attempt is served as usual
        res.status = 206;
        res.set_header("Content-Range",
                       absl::StrCat("bytes ", offset, "-", offset + length - 1, "/", pack.size()));
        res.set_content_provider(length, "application/octet-stream",
                                 [&](size_t, size_t, httplib::DataSink& sink) {
                                   // Wrong bytes, then the connection drops.
                                   const std::string junk(length / 2, 'x');
                                   sink.write(junk.data(), junk.size());
                                   return false;
                                 });
        return true;
      case Answer::kTooLong:
        res.status = 206;
        res.set_content(std::string(length + 1, 'y'), "application/octet-stream");
        return true;
      case Answer::kWrongRange:  // the right length, from the object's start
        res.status = 206;
        res.set_content(pack.substr(0, length), "application/octet-stream");
        res.set_header("Content-Range", absl::StrCat("bytes 0-", length - 1, "/", pack.size()));
        return true;
      case Answer::kMissing:
        res.status = 404;
        res.set_content("<Error><Code>NoSuchKey</Code></Error>", "application/xml");
        return true;
    }
    return false;
  };
  auto whole = read();
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_TRUE(*whole == want);

  answer = Answer::kCutOff;
  auto again = read();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(cut_off, 2);
  EXPECT_TRUE(*again == want);

  answer = Answer::kTooLong;
  auto too_long = read();
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kDataLoss) << too_long.status();
  EXPECT_THAT(std::string(too_long.status().message()),
              HasSubstr("s3://b/p/packs/aa/pack: the server sent more than the 300000 bytes"));

  answer = Answer::kWrongRange;
  auto elsewhere = read();
  EXPECT_EQ(elsewhere.status().code(), absl::StatusCode::kDataLoss) << elsewhere.status();
  EXPECT_THAT(std::string(elsewhere.status().message()),
              HasSubstr("s3://b/p/packs/aa/pack: asked for bytes 1000-300999, the server sent "
                        "300000 bytes as Content-Range \"bytes 0-299999/1048576\""));

  answer = Answer::kMissing;
  auto missing = read();
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("packs/aa/pack"));
}

// A machine whose clock is hours off the server's: S3 refuses what it
// signs (403; a HEAD's without a body). The client learns the server's
// time from the refusal's Date header, sends again at once, and signs
// every later request right. A 403 from a server whose clock agrees is not
// sent again.
TEST_F(S3ClientTest, AClockHoursOffTheServersIsCorrectedOnceAndRemembered) {
  FakeS3 fake;
  std::atomic<int> refused{0};
  std::atomic<bool> server_ahead{true};
  fake.script = [&](const httplib::Request& req, httplib::Response& res) {
    const absl::Time server_now =
        absl::Now() + (server_ahead ? absl::Hours(2) : absl::ZeroDuration());
    res.set_header("Date",
                   absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", server_now, absl::UTCTimeZone()));
    absl::Time signed_at;
    std::string error;
    const bool in_time = absl::ParseTime("%E4Y%m%dT%H%M%SZ", req.get_header_value("x-amz-date"),
                                         absl::UTCTimeZone(), &signed_at, &error) &&
                         absl::AbsDuration(signed_at - server_now) <= absl::Minutes(15);
    if (in_time && server_ahead) return false;  // served as usual
    ++refused;
    res.status = 403;
    res.set_content(in_time ? "<Error><Code>AccessDenied</Code></Error>"
                            : "<Error><Code>RequestTimeTooSkewed</Code></Error>",
                    "application/xml");
    return true;
  };
  fake.objects["/b/p/k"] = "value";
  S3Client client = Client(fake);
  S3Request head;
  head.method = "HEAD";
  head.key = "p/k";
  auto first = client.Send(head, "object k");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(first->attempts, 2);
  EXPECT_EQ(refused.load(), 1);
  S3Request put;
  put.method = "PUT";
  put.key = "p/new";
  put.body = "data";
  auto second = client.Send(put, "object new");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(second->attempts, 1);
  EXPECT_EQ(refused.load(), 1);
  EXPECT_EQ(fake.objects["/b/p/new"], "data");

  // A server whose clock is this machine's (after the correction, the old
  // offset is now two hours off it): the offset is learnt back, once.
  server_ahead = false;
  auto back = client.Send(head, "object k");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->status, 403);  // this fake refuses everything now
  EXPECT_EQ(back->attempts, 2);
  auto denied = client.Send(head, "object k");
  ASSERT_TRUE(denied.ok()) << denied.status();
  EXPECT_EQ(denied->status, 403);
  EXPECT_EQ(denied->attempts, 1) << "a 403 with the clocks agreeing was sent again";
}

TEST(S3Location, TheUrlsPartsDefaultsAndRefusals) {
  auto l = ParseS3Location("s3://bucket/a/b/?endpoint=https%3A%2F%2Fs3.example:9000&region=eu-1");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->bucket, "bucket");
  EXPECT_EQ(l->prefix, "a/b");
  EXPECT_EQ(l->endpoint, "https://s3.example:9000");
  EXPECT_EQ(l->region, "eu-1");
  EXPECT_TRUE(l->path_style);
  auto aws = ParseS3Location("s3://bucket?region=eu-west-1");
  ASSERT_TRUE(aws.ok());
  EXPECT_EQ(aws->endpoint, "https://s3.eu-west-1.amazonaws.com");
  EXPECT_FALSE(aws->path_style);
  EXPECT_THAT(std::string(ParseS3Location("s3://b?access_key=AKID").status().message()),
              HasSubstr("credentials never go in the URL"));
  // No message repeats the query: a secret put there by mistake stays out
  // of logs, whatever the parameter is called.
  for (const char* url : {"s3://b?aws_secret_access_key=SEKRIT", "s3://b?session_token=SEKRIT",
                          "s3://b?addressing=sideways&x=SEKRIT", "s3://b?colour=SEKRIT"}) {
    const auto refused = ParseS3Location(url);
    ASSERT_FALSE(refused.ok()) << url;
    EXPECT_THAT(std::string(refused.status().message()), Not(HasSubstr("SEKRIT"))) << url;
  }
  EXPECT_THAT(std::string(ParseS3Location("s3://b?colour=red").status().message()),
              HasSubstr("unknown parameter \"colour\""));
  EXPECT_THAT(std::string(ParseS3Location("s3://?region=x").status().message()),
              HasSubstr("names no bucket"));
  EXPECT_THAT(std::string(ParseS3Location("s3://b?endpoint=ftp://h").status().message()),
              HasSubstr("must start with https://"));
  EXPECT_THAT(std::string(ParseS3Location("s3://b?object_lock=forever").status().message()),
              HasSubstr("compliance or governance"));
}

TEST(S3Credentials, AFileReadableByOthersIsRefusedAndNoValueIsEverPrinted) {
  ::dagvault::testing::TempDir dir("s3creds");
  const std::string path = dir.Sub("creds");
  ASSERT_TRUE(WriteFileAtomically(path,
                                  absl::StrCat("[default]\naws_access_key_id = AKIDFILE\n"
                                               "aws_secret_access_key = ",
                                               kSecret, "\n"),
                                  0644)
                  .ok());
  const auto open = LoadS3Credentials(path);
  ASSERT_EQ(open.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(open.status().message()),
              AllOf(HasSubstr(path), HasSubstr("chmod 600"), Not(HasSubstr(kSecret))));
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  auto c = LoadS3Credentials(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->access_key, "AKIDFILE");
  EXPECT_EQ(c->secret_key, kSecret);
  ASSERT_TRUE(WriteFileAtomically(path, "aws_access_key_id = only\n", 0600).ok());
  EXPECT_THAT(std::string(LoadS3Credentials(path).status().message()),
              HasSubstr("needs aws_access_key_id and aws_secret_access_key"));
  // Without a file or the variables (set again afterwards: the other
  // suites of this binary read the real server's from them).
  std::map<std::string, std::string> saved;
  for (const char* v :
       {"DAGVAULT_S3_CREDENTIALS_FILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}) {
    if (const char* value = std::getenv(v)) saved[v] = value;
    unsetenv(v);
  }
  EXPECT_THAT(std::string(LoadS3Credentials("").status().message()),
              HasSubstr("no S3 credentials"));
  for (const auto& [name, value] : saved) setenv(name.c_str(), value.c_str(), 1);
}

}  // namespace
}  // namespace dagvault::repository
