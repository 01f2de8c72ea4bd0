// A folder written by tools/export/export_slip.py, loaded the way the server loads model folders:
// server::ReadManifest for manifest.json and LoadTorchScriptModule (LibTorch 1.13) for model.pt.
// The CTest step export_slip_test writes the folder and an input with its expected embedding,
// computed in Python by an op-by-op ViT that does not share code with the exporter.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/models/torch/torchscript_module.h"
#include "gtest/gtest.h"
#include "server/model_folder.h"
#include "tests/support/shared_data.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;

const std::string& ExportDir() {
  static const std::string dir = testing::BinaryDir() + "/export_fixtures";
  return dir;
}

// ReadReference parses slip_reference.txt: "input <dims>", its values, "output <dims>", values.
void ReadReference(const std::string& path, models::Tensor* input, models::Tensor* output) {
  std::ifstream in(path);
  ASSERT_TRUE(in) << "cannot open " << path;
  for (models::Tensor* t : {input, output}) {
    std::string header, values;
    ASSERT_TRUE(std::getline(in, header) && std::getline(in, values)) << path << " is truncated";
    std::istringstream dims(header);
    std::string label;
    dims >> label;
    std::vector<int64_t> shape;
    int64_t size = 1;
    for (int64_t d; dims >> d;) {
      shape.push_back(d);
      size *= d;
    }
    std::vector<float> data;
    std::istringstream numbers(values);
    for (float v; numbers >> v;) data.push_back(v);
    ASSERT_EQ(static_cast<int64_t>(data.size()), size) << label << " in " << path;
    *t = models::Tensor::Float(std::move(shape), std::move(data));
  }
}

class ExportedFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(ExportDir() + "/slip/model.pt")) {
      GTEST_SKIP() << "no exported folder in " << ExportDir()
                   << " (the export_slip_test step writes it; it needs /usr/bin/python3 + torch)";
    }
  }
};

TEST_F(ExportedFolderTest, SlipManifestReadsAsAnImageEncoder) {
  auto manifest = server::ReadManifest(ExportDir() + "/slip", models::ModelKind::kImageEncoder);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  models::Tensor input, expected;
  ReadReference(ExportDir() + "/slip_reference.txt", &input, &expected);
  EXPECT_EQ(manifest->embedding_dim, expected.shape[1]);
  EXPECT_EQ(manifest->image.size, input.shape[3]);
  EXPECT_EQ(manifest->image.resize_mode, image::ResizeMode::kShortestSideCenterCrop);
  EXPECT_EQ(manifest->image.interpolation, image::Interpolation::kBilinear);
  EXPECT_FLOAT_EQ(manifest->image.mean[0], 0.485f);  // ImageNet statistics, as SLIP's eval
  EXPECT_FLOAT_EQ(manifest->image.std[2], 0.225f);

  // The kind is checked: the same folder is not a CLIP model.
  EXPECT_EQ(server::ReadManifest(ExportDir() + "/slip", models::ModelKind::kClip).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ExportedFolderTest, SlipModelRunsInLibTorchAndMatchesPython) {
  models::Tensor input, expected;
  ReadReference(ExportDir() + "/slip_reference.txt", &input, &expected);
  auto module = models::LoadTorchScriptModule(ExportDir() + "/slip/model.pt");
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_TRUE((*module)->HasMethod("encode_image"));
  EXPECT_FALSE((*module)->HasMethod("encode_text"));

  auto got = (*module)->Call("encode_image", {input});
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->shape, expected.shape);
  float scale = 0, worst = 0;
  for (size_t i = 0; i < expected.f32.size(); ++i) {
    scale = std::max(scale, std::fabs(expected.f32[i]));
    worst = std::max(worst, std::fabs(got->f32[i] - expected.f32[i]));
  }
  EXPECT_GT(scale, 0.f);
  EXPECT_LE(worst, 1e-4f * std::max(1.f, scale)) << "max |diff| " << worst;

  // A batch of one gives the same row: the batch size was not baked into the file.
  models::Tensor first = models::Tensor::Float(
      {1, input.shape[1], input.shape[2], input.shape[3]},
      std::vector<float>(input.f32.begin(), input.f32.begin() + input.f32.size() / input.shape[0]));
  auto one = (*module)->Call("encode_image", {first});
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ(one->shape, (std::vector<int64_t>{1, expected.shape[1]}));
  for (int64_t d = 0; d < expected.shape[1]; ++d) {
    EXPECT_NEAR(one->f32[d], expected.f32[d], 1e-4f * std::max(1.f, scale)) << d;
  }
}

}  // namespace
}  // namespace retrace
