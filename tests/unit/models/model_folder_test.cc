// Model folders and the model wrappers over the real TorchScript runtime: the oracle fixture
// models give known outputs; modules built here in C++ break the contract on purpose.
#include <torch/script.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "core/image/decode.h"
#include "gtest/gtest.h"
#include "server/model_folder.h"
#include "tests/support/server_process.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using testing::FixtureDir;

class ModelFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(FixtureDir() + "/oracle/clip/model.pt")) {
      GTEST_SKIP() << "oracle models not found in " << FixtureDir()
                   << " (the make_test_fixtures step needs ../shared/data)";
    }
  }

  // CopyOracle copies the oracle model set to a fresh folder a test may break.
  std::string CopyOracle() {
    const std::string dir = testing::NewTempDir("models");
    fs::copy(FixtureDir() + "/oracle", dir, fs::copy_options::recursive);
    return dir;
  }

  static image::Image Decode(const std::string& path) {
    auto image = image::DecodeImage(testing::ReadFileBytes(path), image::DecodeLimits{});
    EXPECT_TRUE(image.ok()) << image.status();
    return *image;
  }
};

TEST_F(ModelFolderTest, OracleClipEmbedsClassWordsOnTheirOwnAxes) {
  auto models = server::LoadModelSet(FixtureDir() + "/oracle");
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->clip->dim(), 16);
  auto texts = models->clip->EncodeTexts({"a picture of a dog", "A CAT!", "no class word here"});
  ASSERT_TRUE(texts.ok()) << texts.status();
  ASSERT_EQ(texts->rows, 3u);
  // Oracle classes in order: dog, cat, horse, house, guitar, bird, tree, car; 15 = "none".
  const int expected_axis[] = {0, 1, 15};
  for (int row = 0; row < 3; ++row) {
    for (int d = 0; d < 16; ++d) {
      EXPECT_FLOAT_EQ(texts->Row(row)[d], d == expected_axis[row] ? 1.f : 0.f) << row << "," << d;
    }
  }
}

TEST_F(ModelFolderTest, OracleCaptionerNamesTheClassAndHonoursMaxTokens) {
  auto models = server::LoadModelSet(FixtureDir() + "/oracle");
  ASSERT_TRUE(models.ok()) << models.status();
  image::Image horse = Decode(FixtureDir() + "/images/sketch/horse/horse_0.png");
  image::Image car = Decode(FixtureDir() + "/images/painting/car/car_1.png");
  auto captions = models->captioner->Caption({&horse, &car}, {});
  ASSERT_TRUE(captions.ok()) << captions.status();
  EXPECT_EQ((*captions)[0], "a picture of a horse");
  EXPECT_EQ((*captions)[1], "a picture of a car");

  models::CaptionOptions short_caption;
  short_caption.max_new_tokens = 3;
  captions = models->captioner->Caption({&horse}, short_caption);
  ASSERT_TRUE(captions.ok());
  EXPECT_EQ((*captions)[0], "a picture of");

  short_caption.max_new_tokens = 500;
  EXPECT_EQ(models->captioner->Caption({&horse}, short_caption).status().code(),
            absl::StatusCode::kInvalidArgument);

  auto embedded = models->clip->EncodeImages({&horse, &car});
  ASSERT_TRUE(embedded.ok());
  EXPECT_GT(embedded->Row(0)[2], 0.99f);  // horse axis
  EXPECT_GT(embedded->Row(1)[7], 0.99f);  // car axis
}

TEST_F(ModelFolderTest, MissingFilesAndBadManifestsNameTheFile) {
  auto missing = server::LoadModelSet(testing::NewTempDir("empty"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "clip/manifest.json"))
      << missing.status();

  const std::string dir = CopyOracle();
  std::ofstream(dir + "/clip/manifest.json") << R"({"kind": "CLIP", "embedding_dimm": 16})";
  auto typo = server::LoadModelSet(dir);
  EXPECT_EQ(typo.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(typo.status().message(), "manifest.json")) << typo.status();

  const std::string swapped = CopyOracle();
  fs::copy_file(swapped + "/captioner/manifest.json", swapped + "/clip/manifest.json",
                fs::copy_options::overwrite_existing);
  auto wrong_kind = server::LoadModelSet(swapped);
  EXPECT_EQ(wrong_kind.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(wrong_kind.status().message(), "CAPTIONER")) << wrong_kind.status();

  const std::string no_model = CopyOracle();
  fs::remove(no_model + "/captioner/model.pt");
  auto no_pt = server::LoadModelSet(no_model);
  EXPECT_EQ(no_pt.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(no_pt.status().message(), "captioner/model.pt")) << no_pt.status();
}

TEST_F(ModelFolderTest, AMissingMethodFailsStartUpNamingIt) {
  const std::string dir = CopyOracle();
  torch::jit::Module module("ImageOnly");
  module.define("def encode_image(self, x):\n    return x.flatten(1)[:, :16]\n");
  module.save(dir + "/clip/model.pt");
  auto loaded = server::LoadModelSet(dir);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(loaded.status().message(), "clip/model.pt")) << loaded.status();
  EXPECT_TRUE(absl::StrContains(loaded.status().message(), "'encode_text'")) << loaded.status();
}

TEST_F(ModelFolderTest, AModelBreakingItsShapePromiseFailsTheCallNotTheProcess) {
  const std::string dir = CopyOracle();
  torch::jit::Module module("WrongShape");
  module.define(
      "def encode_image(self, x):\n    return x.flatten(1)[:, :5]\n"
      "def encode_text(self, t):\n    return t[:, :16].float()\n");
  module.save(dir + "/clip/model.pt");
  auto models = server::LoadModelSet(dir);
  ASSERT_TRUE(models.ok()) << models.status();
  image::Image image = Decode(FixtureDir() + "/images/photo/dog/dog_0.png");
  auto out = models->clip->EncodeImages({&image});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(absl::StrContains(out.status().message(), "[1, 5]")) << out.status();
  EXPECT_TRUE(absl::StrContains(out.status().message(), "encode_image")) << out.status();
}

}  // namespace
}  // namespace retrace
