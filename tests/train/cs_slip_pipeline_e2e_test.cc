// The CS-SLIP path of tools/train/README.md in miniature, with the real server and CLI: index a
// folder (captions by the server's captioner, here the oracle's), mine the pairs through the
// API, train a tiny encoder on them (tools/train, Debian's python3-torch), export it with
// tools/export/export_slip.py, restart the server with it as the models folder's image_encoder/,
// and use it: the collection's image space holds its features, a provenance search finds an
// image's exact copy first, and `retrace eval provenance` reports the image-encoder variants.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/server_process.h"
#include "tests/support/shared_data.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::FixtureDir;

constexpr char kPython[] = "/usr/bin/python3";

struct Result {
  int exit_code;
  std::string out;
};

// Shell runs `command` with stdout and stderr into one file; returns the exit code and output.
Result Shell(const std::string& command, const std::string& scratch) {
  const std::string log = scratch + "/command.log";
  const int status = std::system((command + " >" + log + " 2>&1 </dev/null").c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, testing::ReadFileBytes(log)};
}

class CsSlipPipelineE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(FixtureDir() + "/oracle/clip/model.pt")) {
      GTEST_SKIP() << "oracle models not found in " << FixtureDir()
                   << " (the make_test_fixtures step needs ../shared/data)";
    }
    scratch_ = testing::NewTempDir("cs-slip");
    if (Shell(absl::StrCat(kPython, " -c 'import torch, torchvision'"), scratch_).exit_code != 0) {
      GTEST_SKIP() << kPython << " lacks torch or torchvision (python3-torch, python3-torchvision)";
    }
  }

  Result Cli(const testing::ServerProcess& server, const std::string& args) {
    return Shell(absl::StrCat(testing::CliBinary(), " --server ", server.address(), " ", args),
                 scratch_);
  }

  std::string scratch_;
};

TEST_F(CsSlipPipelineE2eTest, MineTrainExportServe) {
  const std::string images = FixtureDir() + "/images";
  const std::string tools = testing::SourceDir() + "/tools";
  {
    testing::ServerProcess server(
        {FixtureDir() + "/oracle", testing::NewTempDir("cs-slip-data"), {}});
    ASSERT_TRUE(server.Start().ok()) << server.LogTail();
    ASSERT_EQ(Cli(server, "collections create corpus").exit_code, 0);
    Result r = Cli(server, "index --collection corpus " + images);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    r = Cli(server,
            absl::StrCat("mine-pairs --collection corpus --images ", images, " --out ", scratch_,
                         "/pairs.jsonl --embeddings-out ", scratch_, "/captions.emb"));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_TRUE(absl::StrContains(r.out, "96 with a nearest item")) << r.out;
  }

  // Train: a few steps of the tiny ViT, then export the checkpoint unchanged.
  Result r = Shell(absl::StrCat(kPython, " ", tools, "/train/train_cs_slip.py --images ", images,
                                " --pairs ", scratch_, "/pairs.jsonl --embeddings ", scratch_,
                                "/captions.emb --out ", scratch_,
                                "/run --model tiny --ssl-mlp-dim 64 --ssl-emb-dim 32 --steps 4 "
                                "--batch-size 16 --threads 1 --log-every 0"),
                   scratch_);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "96 items (96 with a partner)")) << r.out;
  std::vector<std::string> log =
      absl::StrSplit(testing::ReadFileBytes(scratch_ + "/run/log.jsonl"), '\n', absl::SkipEmpty());
  ASSERT_EQ(log.size(), 4u);
  for (const char* loss : {"clip", "ssl", "cs"}) {
    EXPECT_TRUE(json::parse(log.back()).at(loss).is_number()) << loss << ": " << log.back();
  }
  const std::string models = scratch_ + "/models";
  fs::create_directories(models);
  r = Shell(absl::StrCat(kPython, " ", tools, "/export/export_slip.py --checkpoint ", scratch_,
                         "/run/checkpoint.pt --out ", models, "/image_encoder"),
            scratch_);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "heads 4, image 32, D 16")) << r.out;
  fs::create_directory_symlink(FixtureDir() + "/oracle/clip", models + "/clip");
  fs::create_directory_symlink(FixtureDir() + "/oracle/captioner", models + "/captioner");

  // Serve: the trained encoder is the collection's image encoder.
  testing::ServerProcess server({models, testing::NewTempDir("cs-slip-serve"), {}});
  ASSERT_TRUE(server.Start().ok()) << server.LogTail();
  ASSERT_EQ(Cli(server, "collections create photos").exit_code, 0);
  r = Cli(server, "collections describe photos");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "SLIP image encoder (CSSLIP_TINY, checkpoint.pt)")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "image_dim            32")) << r.out;  // 16 + CLIP's 16
  ASSERT_EQ(Cli(server, "index --collection photos " + images + "/photo").exit_code, 0);

  r = Cli(server, "--json get --collection photos --embeddings horse/horse_0.png");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const json got = json::parse(r.out);
  EXPECT_EQ(got["results"][0]["item"]["image_features"]["values"].size(), 16u) << r.out;

  r = Cli(server, "search --collection photos --mode provenance --no-rerank --top-k 2 --image " +
                      images + "/photo/horse/horse_0.png");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 2u) << r.out;
  std::vector<std::string> first = absl::StrSplit(lines[1], ' ', absl::SkipEmpty());
  ASSERT_GE(first.size(), 6u) << r.out;
  EXPECT_EQ(first[2], "1.0000") << "an exact copy: both encoders agree: " << r.out;
  EXPECT_EQ(first[5], "horse/horse_0.png") << r.out;

  // The provenance protocol compares the features: CLIP, the encoder, both, re-ranked.
  const std::string similar = scratch_ + "/similar";
  ASSERT_EQ(Cli(server, absl::StrCat("eval build-similar --refs ", images, "/photo --out ", similar,
                                     " --per-ref 1 --seed 3"))
                .exit_code,
            0);
  r = Cli(server, absl::StrCat("eval provenance --data ", similar, " --refs ", images,
                               "/photo --k 1,5 --out ", scratch_, "/eval"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const json results = json::parse(testing::ReadFileBytes(scratch_ + "/eval/results.json"));
  EXPECT_EQ(results["variants"],
            json::array({"clip", "image_encoder", "concatenated", "reranked"}));
  for (const char* variant : {"image_encoder", "concatenated"}) {
    const double r5 = results["results"][variant]["R@5"];
    EXPECT_GE(r5, 0.0) << variant;
    EXPECT_LE(r5, 1.0) << variant;
  }
}

}  // namespace
}  // namespace retrace
