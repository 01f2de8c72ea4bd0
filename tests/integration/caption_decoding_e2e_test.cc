// Caption decoding options end to end: the real server with the decoding-rules captioner
// (tools/fixtures/decoding_models.py), through gRPC and through `retrace caption`, including the
// server config's captioning defaults and the field-naming errors.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/server_process.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using testing::FixtureDir;

using testing::CliResult;

class CaptionDecodingE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(FixtureDir() + "/rules/captioner/model.pt")) {
      GTEST_SKIP() << "decoding fixtures not found in " << FixtureDir();
    }
    scratch_ = testing::NewTempDir("caption-e2e");
  }

  void StartServer(const std::string& config_text = "") {
    std::vector<std::string> args;
    if (!config_text.empty()) {
      const std::string config = scratch_ + "/server.conf";
      std::ofstream(config) << config_text;
      args = {"--config", config};
    }
    server_ = std::make_unique<testing::ServerProcess>(testing::ServerOptions{
        FixtureDir() + "/rules", testing::NewTempDir("caption-data"), args});
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
  }

  static std::string Image(const std::string& name) {
    return FixtureDir() + "/images/photo/" + name + "/" + name + "_0.png";
  }

  grpc::Status Caption(const v1::CaptionOptions& options, const std::vector<std::string>& names,
                       v1::CaptionResponse* response) {
    v1::CaptionRequest request;
    for (const std::string& name : names) request.add_images(testing::ReadFileBytes(Image(name)));
    *request.mutable_options() = options;
    grpc::ClientContext context;
    return server_->NewStub()->Caption(&context, request, response);
  }

  CliResult Run(const std::string& args) { return testing::RunCli(server_->address(), args, scratch_); }

  std::unique_ptr<testing::ServerProcess> server_;
  std::string scratch_;
};

TEST_F(CaptionDecodingE2eTest, GrpcOptionsReachTheDecoder) {
  StartServer();
  v1::CaptionResponse greedy;
  ASSERT_TRUE(Caption({}, {"cat", "dog"}, &greedy).ok());
  ASSERT_EQ(greedy.results_size(), 2);
  EXPECT_EQ(greedy.results(0).caption(), "headphones");
  EXPECT_EQ(greedy.results(1).caption(),
            "headphones and headphones and headphones and headphones and");

  v1::CaptionOptions options;
  options.set_num_beams(3);
  options.set_no_repeat_ngram_size(2);
  v1::CaptionResponse beam;
  ASSERT_TRUE(Caption(options, {"cat", "dog"}, &beam).ok());
  ASSERT_EQ(beam.results_size(), 2);
  EXPECT_EQ(beam.results(0).caption(), "a cat");
  EXPECT_EQ(beam.results(1).caption(), "headphones and headphones");

  v1::CaptionOptions prompt;
  prompt.set_prompt("a photo of");
  v1::CaptionResponse prompted;
  ASSERT_TRUE(Caption(prompt, {"horse"}, &prompted).ok());
  EXPECT_EQ(prompted.results(0).caption(), "horse");

  v1::CaptionOptions bad;
  bad.set_num_beams(9);
  v1::CaptionResponse ignored;
  grpc::Status status = Caption(bad, {"cat"}, &ignored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "options.num_beams: 9 is not in 1..8"))
      << status.error_message();
}

TEST_F(CaptionDecodingE2eTest, ConfigDefaultsApplyToUnsetFieldsOnly) {
  StartServer("captioning { num_beams: 2 repetition_penalty: 2 }\n");
  v1::CaptionResponse defaults;
  ASSERT_TRUE(Caption({}, {"cat", "dog"}, &defaults).ok());
  EXPECT_EQ(defaults.results(0).caption(), "a cat");
  EXPECT_EQ(defaults.results(1).caption(), "headphones and dog");

  v1::CaptionOptions greedy;  // a set field wins over the config, even when it is the default
  greedy.set_num_beams(1);
  greedy.set_repetition_penalty(1);
  v1::CaptionResponse overridden;
  ASSERT_TRUE(Caption(greedy, {"cat"}, &overridden).ok());
  EXPECT_EQ(overridden.results(0).caption(), "headphones");
}

TEST_F(CaptionDecodingE2eTest, BadConfigIsRefusedAtStart) {
  const std::string config = scratch_ + "/bad.conf";
  std::ofstream(config) << "captioning { num_beams: 12 }\n";
  testing::ServerProcess server(testing::ServerOptions{
      FixtureDir() + "/rules", testing::NewTempDir("caption-bad"), {"--config", config}});
  absl::Status started = server.Start();
  EXPECT_FALSE(started.ok());
  EXPECT_TRUE(absl::StrContains(started.message(), "captioning.num_beams")) << started;
}

TEST_F(CaptionDecodingE2eTest, CliBeamAndRuleFlags) {
  StartServer();
  CliResult r = Run("caption --beam 3 --max-tokens 6 " + Image("cat") + " " + Image("house"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "a cat")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "a house with picture")) << r.out;

  r = Run("caption " + Image("cat"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "headphones")) << r.out;
  EXPECT_FALSE(absl::StrContains(r.out, "a cat")) << r.out;

  r = Run("caption --no-repeat-ngram 1 " + Image("dog"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "headphones and dog")) << r.out;

  r = Run("caption --min-tokens 3 --repetition-penalty 1.5 --length-penalty 0 " + Image("horse"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "a horse with")) << r.out;

  r = Run("--json caption --prompt \"a photo of\" " + Image("house"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "\"caption\": \"house\"")) << r.out;
}

TEST_F(CaptionDecodingE2eTest, CliFlagErrorsExitTwoNamingTheFlag) {
  StartServer();
  const std::pair<std::string, std::string> cases[] = {
      {"--beam 9", "--beam: expected an integer from 1 to 8, got '9'"},
      {"--beam x", "--beam: expected an integer"},
      {"--no-repeat-ngram -1", "--no-repeat-ngram: expected an integer from 0 to 16"},
      {"--repetition-penalty 0.5", "--repetition-penalty: expected a number from 1 to 10"},
      {"--length-penalty nan", "--length-penalty: expected a number from -4 to 4"},
      {"--min-tokens 5 --max-tokens 3", "--min-tokens: 5 is more than --max-tokens 3"},
  };
  for (const auto& [flags, message] : cases) {
    CliResult r = Run("caption " + flags + " " + Image("cat"));
    EXPECT_EQ(r.exit_code, 2) << flags << ": " << r.out << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, message)) << flags << ": " << r.err;
  }
}

}  // namespace
}  // namespace retrace
