// Folders written by tools/export's image-encoder exporters (export_slip.py, export_sscd.py,
// export_dino.py), loaded the way the server loads model folders: server::ReadManifest for
// manifest.json and LoadTorchScriptModule (LibTorch 1.13) for model.pt. The CTest steps
// export_slip_test and export_baseline_test write the folders and, for each, an input with its
// expected embedding, computed in Python by a reference that does not share code with the
// exporter (an op-by-op ViT; the eager SSCD module).
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/image/image.h"
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

// ReadTensors parses the reference files the Python side writes: per tensor a line
// "<label> <dims...>" and a line of values; labels in `int64_labels` hold token ids.
std::map<std::string, models::Tensor> ReadTensors(const std::string& path,
                                                  const std::set<std::string>& int64_labels = {}) {
  std::map<std::string, models::Tensor> tensors;
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot open " << path;
  for (std::string header, values; std::getline(in, header) && std::getline(in, values);) {
    std::istringstream dims(header);
    std::string label;
    dims >> label;
    std::vector<int64_t> shape;
    size_t size = 1;
    for (int64_t d; dims >> d;) {
      shape.push_back(d);
      size *= static_cast<size_t>(d);
    }
    std::vector<double> data;
    std::istringstream numbers(values);
    for (double v; numbers >> v;) data.push_back(v);
    EXPECT_EQ(data.size(), size) << label << " in " << path;
    if (int64_labels.count(label)) {
      tensors[label] = models::Tensor::Int64(shape, std::vector<int64_t>(data.begin(), data.end()));
    } else {
      tensors[label] = models::Tensor::Float(shape, std::vector<float>(data.begin(), data.end()));
    }
  }
  return tensors;
}

// MaxAbsDiff compares two float vectors of equal size; `scale` gets the largest |want|.
float MaxAbsDiff(const std::vector<float>& got, const std::vector<float>& want, float* scale) {
  float worst = 0;
  *scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    *scale = std::max(*scale, std::fabs(want[i]));
    worst = std::max(worst, std::fabs(got[i] - want[i]));
  }
  return worst;
}

// An image-encoder folder an exporter wrote, with what its manifest must say.
struct EncoderFolder {
  const char* name;  // <export_fixtures>/<name>/ and <name>_reference.txt
  const char* writer;
  image::ResizeMode resize_mode;
  image::Interpolation interpolation;
};

void PrintTo(const EncoderFolder& folder, std::ostream* os) { *os << folder.name; }

class ExportedFolderTest : public ::testing::TestWithParam<EncoderFolder> {
 protected:
  void SetUp() override {
    folder_ = ExportDir() + "/" + GetParam().name;
    if (!fs::exists(folder_ + "/model.pt")) {
      GTEST_SKIP() << "no exported folder in " << folder_ << " (the " << GetParam().writer
                   << " step writes it; it needs /usr/bin/python3 + torch)";
    }
    ref_ = ReadTensors(ExportDir() + "/" + GetParam().name + "_reference.txt");
  }
  std::string folder_;
  std::map<std::string, models::Tensor> ref_;
};

TEST_P(ExportedFolderTest, ManifestReadsAsAnImageEncoder) {
  auto manifest = server::ReadManifest(folder_, models::ModelKind::kImageEncoder);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  const models::Tensor& input = ref_["input"];
  const models::Tensor& expected = ref_["output"];
  ASSERT_EQ(expected.shape.size(), 2u);
  EXPECT_EQ(manifest->embedding_dim, expected.shape[1]);
  EXPECT_EQ(manifest->image.size, input.shape[3]);
  EXPECT_EQ(manifest->image.resize_mode, GetParam().resize_mode);
  EXPECT_EQ(manifest->image.interpolation, GetParam().interpolation);
  EXPECT_FLOAT_EQ(manifest->image.mean[0], 0.485f);  // ImageNet statistics, as all three
  EXPECT_FLOAT_EQ(manifest->image.std[2], 0.225f);

  // The kind is checked: the same folder is not a CLIP model.
  EXPECT_EQ(server::ReadManifest(folder_, models::ModelKind::kClip).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(ExportedFolderTest, ModelRunsInLibTorchAndMatchesPython) {
  const models::Tensor& input = ref_["input"];
  const models::Tensor& expected = ref_["output"];
  ASSERT_EQ(input.shape.size(), 4u);
  auto module = models::LoadTorchScriptModule(folder_ + "/model.pt");
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_TRUE((*module)->HasMethod("encode_image"));
  EXPECT_FALSE((*module)->HasMethod("encode_text"));

  auto got = (*module)->Call("encode_image", {input});
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->shape, expected.shape);
  float scale = 0;
  const float worst = MaxAbsDiff(got->f32, expected.f32, &scale);
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

// SLIP / CS-SLIP (export_slip_test), and the paper's baselines SSCD and DINO
// (export_baseline_test), each with its own preprocessing.
INSTANTIATE_TEST_SUITE_P(
    Encoders, ExportedFolderTest,
    ::testing::Values(EncoderFolder{"slip", "export_slip_test",
                                    image::ResizeMode::kShortestSideCenterCrop,
                                    image::Interpolation::kBilinear},
                      EncoderFolder{"sscd", "export_baseline_test", image::ResizeMode::kStretch,
                                    image::Interpolation::kBilinear},
                      EncoderFolder{"dino", "export_baseline_test", image::ResizeMode::kStretch,
                                    image::Interpolation::kBicubic}),
    [](const ::testing::TestParamInfo<EncoderFolder>& info) { return info.param.name; });

// A whole model set as the exporters write it (tests/export/make_model_set.py): the server's
// loader accepts it, the traced CLIP runs with the C++ tokenizer's rows, and the cached
// captioner's logits() matches Python through ModelModule::Call.
class ExportedModelSetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(ExportDir() + "/set/captioner/model.pt")) {
      GTEST_SKIP() << "no exported model set in " << ExportDir()
                   << " (the export_model_set step writes it; it needs python3-torch and "
                      "../shared/data)";
    }
    ref_ = ReadTensors(ExportDir() + "/set_reference.txt", {"tokens"});
  }
  std::map<std::string, models::Tensor> ref_;
};

TEST_F(ExportedModelSetTest, ServerLoadsTheSetAndClipTextMatchesPython) {
  auto models = server::LoadModelSet(ExportDir() + "/set");
  ASSERT_TRUE(models.ok()) << models.status();
  const models::Tensor& want = ref_["clip_text"];
  ASSERT_EQ(models->clip->dim(), want.shape[1]);
  // The C++ tokenizer pads with 0 after the end token; the traced model must pool at the end.
  auto text = models->clip->EncodeTexts({"a picture of a dog"});
  ASSERT_TRUE(text.ok()) << text.status();
  std::vector<float> row(text->Row(0), text->Row(0) + want.shape[1]);
  float scale = 0;
  EXPECT_LE(MaxAbsDiff(row, want.f32, &scale), 1e-4f);

  image::Image gray;
  gray.width = 80;
  gray.height = 60;
  gray.rgb.assign(80 * 60 * 3, 128);
  auto images = models->clip->EncodeImages({&gray});
  ASSERT_TRUE(images.ok()) << images.status();
  auto captions = models->captioner->Caption({&gray}, {});
  ASSERT_TRUE(captions.ok()) << captions.status();  // random weights: any text, but it runs
}

TEST_F(ExportedModelSetTest, CaptionerLogitsMatchPythonAndPrefillIsPresent) {
  auto module = models::LoadTorchScriptModule(ExportDir() + "/set/captioner/model.pt");
  ASSERT_TRUE(module.ok()) << module.status();
  for (const char* method : {"encode_image", "logits", "prefill", "step"}) {
    EXPECT_TRUE((*module)->HasMethod(method)) << method;
  }
  auto logits = (*module)->Call("logits", {ref_["prefix"], ref_["tokens"]});
  ASSERT_TRUE(logits.ok()) << logits.status();
  const models::Tensor& want = ref_["decodable_logits"];
  ASSERT_EQ(logits->shape.size(), 2u);
  ASSERT_EQ(logits->shape[0], want.shape[0]);
  const int64_t vocab = logits->shape[1], decodable = want.shape[1];
  ASSERT_LT(decodable, vocab);  // OPT's logits are wider than its vocab.json
  std::vector<float> head(logits->f32.begin(), logits->f32.begin() + decodable);
  float scale = 0;
  const float worst = MaxAbsDiff(head, want.f32, &scale);
  EXPECT_LE(worst, 1e-4f * std::max(1.f, scale)) << "max |diff| " << worst;
  for (int64_t id = decodable; id < vocab; ++id) {
    EXPECT_TRUE(std::isinf(logits->f32[id]) && logits->f32[id] < 0) << "id " << id;
  }
}

}  // namespace
}  // namespace retrace
