// SigV4 against AWS's published examples: the four S3 examples of "Signature
// Calculations for the Authorization Header" (GET object with a range, PUT
// object with a body, GET bucket lifecycle, GET bucket list) and two from
// the generic SigV4 test suite (get-vanilla, a query out of order).
#include "repository/s3_signer.h"

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault::repository {
namespace {

using ::testing::HasSubstr;

constexpr char kEmpty[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

S3Credentials S3Example() {
  return {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
}
absl::Time May2013() {
  return absl::FromCivil(absl::CivilSecond(2013, 5, 24, 0, 0, 0), absl::UTCTimeZone());
}

std::string Header(const SignedHeaders& s, const std::string& name) {
  for (const auto& [n, v] : s.add) {
    if (n == name) return v;
  }
  return "";
}

TEST(SigV4, TheS3DocumentationsGetObjectExample) {
  SignableRequest r{"GET", "examplebucket.s3.amazonaws.com", "/test.txt",
                    {},    {{"Range", "bytes=0-9"}},         kEmpty};
  const SignedHeaders s = SignV4(r, S3Example(), "us-east-1", "s3", May2013());
  EXPECT_EQ(s.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(Header(s, "Authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(Header(s, "x-amz-date"), "20130524T000000Z");
  EXPECT_EQ(Header(s, "x-amz-content-sha256"), kEmpty);
}

TEST(SigV4, TheS3DocumentationsPutObjectExampleWithAnEncodedKey) {
  const std::string body = "Welcome to Amazon S3.";
  EXPECT_EQ(Sha256Hex(body), "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  SignableRequest r{
      "PUT",
      "examplebucket.s3.amazonaws.com",
      absl::StrCat("/", UriEncode("test$file.text", false)),
      {},
      {{"Date", "Fri, 24 May 2013 00:00:00 GMT"}, {"x-amz-storage-class", "REDUCED_REDUNDANCY"}},
      Sha256Hex(body)};
  const SignedHeaders s = SignV4(r, S3Example(), "us-east-1", "s3", May2013());
  EXPECT_THAT(s.canonical_request, HasSubstr("PUT\n/test%24file.text\n"));
  EXPECT_EQ(s.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(SigV4, TheS3DocumentationsLifecycleAndListExamples) {
  SignableRequest lifecycle{"GET", "examplebucket.s3.amazonaws.com", "/", {{"lifecycle", ""}}, {},
                            kEmpty};
  EXPECT_EQ(SignV4(lifecycle, S3Example(), "us-east-1", "s3", May2013()).signature,
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
  SignableRequest list{"GET", "examplebucket.s3.amazonaws.com",
                       "/",   {{"max-keys", "2"}, {"prefix", "J"}},
                       {},    kEmpty};
  EXPECT_EQ(SignV4(list, S3Example(), "us-east-1", "s3", May2013()).signature,
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4, TheGenericSuitesVanillaRequestsAndQueryOrder) {
  const S3Credentials suite{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
  const absl::Time at =
      absl::FromCivil(absl::CivilSecond(2015, 8, 30, 12, 36, 0), absl::UTCTimeZone());
  // get-vanilla: signs host and x-amz-date only.
  SignableRequest vanilla{"GET", "example.amazonaws.com", "/", {}, {}, kEmpty, false};
  SignedHeaders s = SignV4(vanilla, suite, "us-east-1", "service", at);
  EXPECT_EQ(s.canonical_request,
            absl::StrCat("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                         "host;x-amz-date\n",
                         kEmpty));
  EXPECT_EQ(s.signature, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  // get-vanilla-query-order-key-case: parameters sorted by name.
  SignableRequest query{
      "GET", "example.amazonaws.com", "/", {{"Param2", "value2"}, {"Param1", "value1"}}, {}, kEmpty,
      false};
  EXPECT_EQ(SignV4(query, suite, "us-east-1", "service", at).signature,
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
  EXPECT_EQ(CanonicalQuery(query.query), "Param1=value1&Param2=value2");
}

TEST(SigV4, EncodingKeepsUnreservedCharactersAndEscapesTheRest) {
  EXPECT_EQ(UriEncode("a b+c/d", true), "a%20b%2Bc/d");
  EXPECT_EQ(UriEncode("a/b", false), "a%2Fb");
  EXPECT_EQ(UriEncode("A-z_0.9~", false), "A-z_0.9~");
  EXPECT_EQ(UriEncode("=&?#%", false), "%3D%26%3F%23%25");
  EXPECT_EQ(Md5Base64(""), "1B2M2Y8AsgTpgAmY7PhCfg==");
  // A session token is signed and sent.
  S3Credentials temporary = S3Example();
  temporary.session_token = "token";
  SignableRequest r{"GET", "h", "/k", {}, {}, kEmpty};
  const SignedHeaders s = SignV4(r, temporary, "us-east-1", "s3", May2013());
  EXPECT_EQ(Header(s, "x-amz-security-token"), "token");
  EXPECT_THAT(Header(s, "Authorization"),
              HasSubstr("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token"));
}

}  // namespace
}  // namespace dagvault::repository
