// The web console against a lab deployment (issue 16 §4, docs/console.md):
// its JSON API over HTTPS with people's certificates and console tokens,
// the roles and the confirmation of actions; and every page opened in
// Debian's headless Chromium, with what each shows asserted from the
// rendered page and a screenshot kept as a test artifact.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <csignal>
#include <filesystem>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "common/certs.h"
#include "common/evp.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "tests/coordinator/deployment.h"
#include "tests/coordinator/deployment_test_util.h"
#include "tests/coordinator/metrics_scrape.h"

namespace dagvault::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Reply {
  int status = 0;
  std::string body;
};

// POST /api/v1/METHOD to the console with certificate `cert` (empty: none)
// and/or bearer `token`.
Reply Post(const Deployment& d, const std::string& method, const std::string& json,
           const std::string& cert, const std::string& token = "", bool confirm = false) {
  auto client = DeploymentHttpsClient(d, d.console_address(), cert);
  if (!client) return {0, "console address is not HOST:PORT: " + d.console_address()};
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  if (confirm) headers.emplace("X-Dagvault-Confirm", "yes");
  auto r = client->Post(("/api/v1/" + method).c_str(), headers, json, "application/json");
  if (!r) return {0, httplib::to_string(r.error())};
  return {r->status, r->body};
}

// base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate: what
// Chromium's --ignore-certificate-errors-spki-list takes, so that the
// browser trusts exactly the coordinator's key and nothing else.
std::string SpkiHash(const std::string& pem_path) {
  auto pem = ReadFileToString(pem_path);
  EXPECT_TRUE(pem.ok());
  BIO* bio = BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  EVP_PKEY* key = X509_get0_pubkey(cert);
  unsigned char* der = nullptr;
  const int n = i2d_PUBKEY(key, &der);
  const Sha256Digest digest = Sha256::Of(der, static_cast<size_t>(n));
  OPENSSL_free(der);
  X509_free(cert);
  return absl::Base64Escape(
      absl::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

// Where screenshots go: $DAGVAULT_TEST_ARTIFACTS/console, else the build
// folder's test-artifacts/console.
std::string ArtifactsDir() {
  const char* env = std::getenv("DAGVAULT_TEST_ARTIFACTS");
  const std::string root =
      env != nullptr && *env != '\0'
          ? std::string(env)
          : std::filesystem::path(BinaryPath("dagvault")).parent_path().parent_path().string() +
                "/test-artifacts";
  const std::string dir = root + "/console";
  std::filesystem::create_directories(dir);
  return dir;
}

class Browser {
 public:
  Browser(const Deployment& d, std::string token)
      : base_(absl::StrCat("https://", d.console_address(), "/")),
        token_(std::move(token)),
        spki_(SpkiHash(CertificateFiles(d.certs(), "coordinator").cert_file())) {}

  // The page's DOM once its data is in, and a screenshot of it as
  // ARTIFACTS/NAME.png.
  std::string Open(const std::string& route, const std::string& name) {
    const std::string url = absl::StrCat(
        base_, "#/", route, route.find('?') == std::string::npos ? "?" : "&", "token=", token_);
    // The screenshot first: a running job is still running for the DOM.
    const std::string shot = ArtifactsDir() + "/" + name + ".png";
    // Chromium may abandon a load when a link comes or goes on the machine
    // (net::ERR_NETWORK_CHANGED), and then writes no screenshot: seen once
    // in CI while fault_matrix_test cut links beside this test. The
    // project's own tests that change links no longer run beside this one
    // (HOST_NETWORK in cmake/DagvaultTest.cmake); for anything else on the
    // machine, such a load is tried again, and only for that error.
    ProcessResult png;
    for (int attempt = 1; attempt <= 3; ++attempt) {
      std::error_code ignored;  // absent is fine: a stale file must not pass
      std::filesystem::remove(shot, ignored);
      png = RunProcess(
          Args({"--screenshot=" + shot, "--window-size=1400,1000", "--hide-scrollbars", url}), {},
          absl::Minutes(2));
      if (PathExists(shot) || !absl::StrContains(png.err, "ERR_NETWORK_CHANGED")) break;
      std::cout << "the network changed while the " << name << " page loaded (attempt " << attempt
                << "); loading it again\n";
    }
    EXPECT_EQ(png.exit_code, 0) << png.err;
    EXPECT_TRUE(PathExists(shot)) << png.err;
    // The DOM is dumped when the virtual time budget runs out. On a loaded
    // machine that has happened once before the page's first API call came
    // back (a CI run: the job page still said "Loading…"), so a page that
    // has not marked itself loaded, with its data or an error, is dumped
    // again. What the page shows is still checked by the caller.
    ProcessResult dom;
    for (int attempt = 1; attempt <= 3; ++attempt) {
      dom = RunProcess(Args({"--dump-dom", url}), {}, absl::Minutes(2));
      EXPECT_EQ(dom.exit_code, 0) << dom.err;
      if (absl::StrContains(dom.out, "data-loaded=")) break;
      std::cout << "the " << name << " page was not loaded when dumped (attempt " << attempt
                << "); dumping it again\n";
    }
    return dom.out;
  }

 private:
  std::vector<std::string> Args(std::vector<std::string> extra) {
    std::vector<std::string> args = {"/usr/bin/chromium", "--headless",
                                     "--no-sandbox",  // the tests run as root
                                     "--disable-gpu", "--no-first-run",
                                     "--user-data-dir=" + profile_.path(),
                                     "--ignore-certificate-errors-spki-list=" + spki_,
                                     // Time for the page's API calls and one refresh.
                                     "--virtual-time-budget=6000"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  std::string base_, token_, spki_;
  TempDir profile_{"chromium"};
};

void Issue(Deployment& d, const std::string& name, const std::string& role) {
  ProcessResult r = RunProcess({BinaryPath("dagvault"), "certs", "issue", "--dir", d.certs(),
                                "--name", name, "--role", role});
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

std::string LoginToken(Deployment& d, const std::string& cert) {
  ProcessResult r = d.Cli({"console", "login", "--cert-name", cert, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  v1::ConsoleToken token;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &token).ok()) << r.out;
  EXPECT_EQ(token.identity(), cert);
  return token.token();
}

TEST(Console, TheApiNeedsAPersonAndTheirRoleAndActionsNeedAConfirmation) {
  DeploymentOptions o = Options();
  o.console = true;
  Deployment d(o, "console-api");
  ASSERT_OK(d.Start());
  Issue(d, "vera", "viewer");
  Issue(d, "otto", "operator");

  // Nobody: refused, and told how to sign in.
  Reply anonymous = Post(d, "GetStatus", "{}", "");
  EXPECT_EQ(anonymous.status, 401) << anonymous.body;
  EXPECT_THAT(anonymous.body, HasSubstr("dagvault console login"));
  EXPECT_EQ(Post(d, "GetStatus", "{}", "", "forged-token").status, 401);
  // A large body from nobody is refused before it is read; from a person,
  // past 1 MiB, too.
  const std::string big(2 << 20, ' ');
  // (The server answers 401 and closes while the client still writes, so
  // the client may see the close instead of the answer.)
  EXPECT_THAT(Post(d, "GetStatus", big, "").status, ::testing::AnyOf(401, 0));
  EXPECT_EQ(Post(d, "GetStatus", big, "vera").status, 413);
  EXPECT_EQ(Post(d, "GetStatus", "{}", "vera").status, 200);  // and it still serves
  // A node's certificate is not a person's.
  Reply node = Post(d, "GetStatus", "{}", "node1");
  EXPECT_EQ(node.status, 403) << node.body;
  // A person's certificate reads; the answer is the admin API's message.
  Reply status = Post(d, "GetStatus", "{}", "vera");
  ASSERT_EQ(status.status, 200) << status.body;
  v1::ClusterStatus parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(status.body, &parsed).ok());
  EXPECT_EQ(parsed.nodes_total(), 3u);
  // ... and may not act.
  Reply denied = Post(d, "StartBackup", R"({"unit":"DB02"})", "vera", "", true);
  EXPECT_EQ(denied.status, 403);
  EXPECT_THAT(denied.body, HasSubstr("StartBackup needs role operator or above"));
  // An operator's token: an action without the confirmation is refused.
  const std::string token = LoginToken(d, "otto");
  Reply unconfirmed = Post(d, "StartBackup", R"({"unit":"DB02","type":"FULL"})", "", token);
  EXPECT_EQ(unconfirmed.status, 428) << unconfirmed.body;
  Reply started = Post(d, "StartBackup", R"({"unit":"DB02","type":"FULL"})", "", token, true);
  ASSERT_EQ(started.status, 200) << started.body;
  v1::JobInfo job;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(started.body, &job).ok());
  auto done = d.WaitJob(job.id());
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state(), v1::JOB_SUCCEEDED);
  // Bad input names what is wrong.
  Reply bad = Post(d, "StartBackup", R"({"unit":"DB02","type":"WEEKLY"})", "", token, true);
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(bad.body, HasSubstr("StartBackupRequest"));
  // Policies stay on the command line.
  EXPECT_EQ(Post(d, "SetPolicy", "{}", "admin", "", true).status, 404);
  // A token cannot mint tokens.
  EXPECT_EQ(Post(d, "CreateConsoleToken", "{}", "", token, true).status, 404);

  // The audit log says who, and through the console.
  ProcessResult audit = d.Cli({"audit", "list", "--identity", "otto", "--json"});
  v1::ListAuditResponse entries;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(audit.out, &entries).ok()) << audit.out;
  bool console_backup = false, login = false;
  for (const auto& e : entries.entries()) {
    console_backup |= e.method() == "StartBackup" && e.via() == "console" && e.allowed();
    login |= e.method() == "CreateConsoleToken" && e.via() == "grpc";
    EXPECT_THAT(e.request() + e.message(), Not(HasSubstr(token)));  // never the secret
  }
  EXPECT_TRUE(console_backup) << audit.out;
  EXPECT_TRUE(login) << audit.out;
  ProcessResult shown = d.Cli({"job", "show", job.id()});
  EXPECT_THAT(shown.out, HasSubstr("requested by otto (operator) through the web console"));
}

TEST(Console, EveryPageShowsTheDeploymentInHeadlessChromium) {
  // Each segment read dwells, so that a backup stays running long enough
  // to be seen with its progress: longer than headless Chromium takes to
  // start and draw a page on a loaded machine (3 s per read was too short
  // three times in a row in a full run on the 2-core machine).
  DeploymentOptions o = Options({{"DAGVAULT_DELAY_AT", "agent.backup.segment_read:8000"}});
  o.console = true;
  Deployment d(o, "console-pages");
  ASSERT_OK(d.Start());
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));
  ProcessResult policy = d.Cli({"policy", "set", "--name", "daily", "--unit", "DB02", "--full",
                                "0 1 * * *", "--rpo", "26h"});
  ASSERT_EQ(policy.exit_code, 0) << policy.err;
  const v1::JobInfo full = BackupWait(d, {"--unit", "DB02", "--type", "full"});
  ASSERT_EQ(full.state(), v1::JOB_SUCCEEDED) << full.reason();
  LoadDb02(d);
  const v1::JobInfo inc = BackupWait(d, {"--unit", "DB02", "--type", "incremental"});
  ASSERT_EQ(inc.state(), v1::JOB_SUCCEEDED) << inc.reason();
  // The newest restore point verified (issue 20 §2): marked on the chain.
  ProcessResult verified = d.Cli({"restore", "verify", "--unit", "DB02", "--wait"});
  ASSERT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  Browser browser(d, LoginToken(d, "admin"));

  // Overview: every unit, worst first, with its RPO state.
  const std::string overview = browser.Open("overview", "overview");
  EXPECT_THAT(overview, HasSubstr("data-loaded=\"overview\""));
  EXPECT_THAT(overview, HasSubstr("data-unit=\"DB02\""));
  EXPECT_THAT(overview, HasSubstr("data-unit=\"SG01\""));
  EXPECT_THAT(overview, HasSubstr("data-rpo=\"ok\""));       // DB02, backed up under 26h
  EXPECT_THAT(overview, HasSubstr("data-rpo=\"not set\""));  // SG01, no policy
  EXPECT_THAT(overview, HasSubstr(inc.id()));                // DB02's last job

  // Topology: three nodes, each unit's copies with their states.
  const std::string topology = browser.Open("topology", "topology");
  EXPECT_THAT(topology, HasSubstr("data-loaded=\"topology\""));
  EXPECT_THAT(topology, HasSubstr("data-copy=\"DB02@node1\""));
  EXPECT_THAT(topology, HasSubstr("data-copy=\"DB02@node3\""));
  EXPECT_THAT(topology, HasSubstr("mounted"));
  EXPECT_THAT(topology, HasSubstr("healthy"));

  // Chains: DB02's chain, a Full and an Incremental with their nodes.
  const std::string chains = browser.Open("chains?unit=DB02", "chains");
  EXPECT_THAT(chains, HasSubstr("data-loaded=\"chains\""));
  EXPECT_THAT(chains, HasSubstr(absl::StrCat("data-piece=\"", full.manifest(), "\"")));
  EXPECT_THAT(chains, HasSubstr(absl::StrCat("data-piece=\"", inc.manifest(), "\"")));
  EXPECT_THAT(chains, HasSubstr("data-type=\"full\""));
  EXPECT_THAT(chains, HasSubstr("data-type=\"incremental\""));
  EXPECT_THAT(chains, HasSubstr("data-restore-point="));
  EXPECT_THAT(chains, HasSubstr("data-verified=\"passed\""));
  EXPECT_THAT(chains, HasSubstr("data-verification=\"passed\""));

  // Trends: two backups of DB02, charted.
  const std::string trends = browser.Open("trends?unit=DB02", "trends");
  EXPECT_THAT(trends, HasSubstr("data-loaded=\"trends\""));
  EXPECT_THAT(trends, HasSubstr("2 backups of DB02."));
  EXPECT_THAT(trends, HasSubstr("data-chart=\"Freeze window\""));
  // The freeze window comes from the manifests (a point per backup, not 0).
  const size_t freeze = trends.find("data-chart=\"Freeze window\"");
  ASSERT_NE(freeze, std::string::npos);
  EXPECT_THAT(trends.substr(freeze), HasSubstr("data-value=\"0."));

  // Jobs: a running backup with its progress. On a loaded machine the
  // backup can end before Chromium has drawn the page (seen once under two
  // test binaries at a time); then the page is opened again with the next
  // backup running.
  std::string running_id, jobs;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    ProcessResult started = d.Cli({"backup", "start", "--unit", "DB02", "--type", "full"});
    ASSERT_EQ(started.exit_code, 0) << started.err;
    ASSERT_TRUE(WaitFor(
        [&] {
          auto s = d.Status();
          return s.ok() && s->running_size() == 1 && s->running(0).bytes_total() > 0;
        },
        absl::Seconds(60)));
    running_id = d.Status()->running(0).id();
    jobs = browser.Open("jobs", "jobs");
    if (absl::StrContains(jobs, absl::StrCat("data-running=\"", running_id, "\""))) break;
    ASSERT_OK(d.WaitJob(running_id).status());
  }
  EXPECT_THAT(jobs, HasSubstr("data-loaded=\"jobs\""));
  EXPECT_THAT(jobs, HasSubstr(absl::StrCat("data-running=\"", running_id, "\"")));
  EXPECT_THAT(jobs, HasSubstr("<progress"));
  EXPECT_THAT(jobs, HasSubstr(absl::StrCat("data-job-row=\"", full.id(), "\"")));
  const std::string job = browser.Open("job?id=" + inc.id(), "job");
  EXPECT_THAT(job, HasSubstr("data-loaded=\"job\""));
  EXPECT_THAT(job, HasSubstr("succeeded"));
  EXPECT_THAT(job, HasSubstr("requested by admin (admin) through the admin API"));
  ASSERT_OK(d.WaitJob(running_id).status());

  // Without a token (and no certificate), the page says how to sign in.
  Browser stranger(d, "not-a-token");
  const std::string refused = stranger.Open("overview", "refused");
  EXPECT_THAT(refused, HasSubstr("data-error=\"UNAUTHENTICATED\""));
  EXPECT_THAT(refused, Not(HasSubstr("data-unit=")));
  std::cout << "screenshots in " << ArtifactsDir() << "\n";
}

}  // namespace
}  // namespace dagvault::testing
