// Batchers::RunImageCalls over the real TorchScript runtime and the demo fixture models: one
// call's CLIP image, image-encoder and captioner calls overlap, and an image is preprocessed
// once per geometry. The results must be bit-identical to each model called directly (which
// preprocesses for itself), with batching on (overlapped) and off (one after the other); one
// failing call gives its own error and leaves the others' results intact; a passed deadline
// fails every call, each with the batcher's error; concurrent callers on two batcher threads
// per model each get their own results (labelled `concurrency`, so `make test-tsan` runs it).
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/engine/batchers.h"
#include "core/engine/engine.h"
#include "core/image/decode.h"
#include "core/image/preprocess.h"
#include "core/models/torch/torchscript_module.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/model_folder.h"
#include "tests/support/server_process.h"
#include "tests/support/test_images.h"

namespace retrace::engine {
namespace {

namespace fs = std::filesystem;
using retrace::testing::FixtureDir;

// BitEqual: the same shape and the same bits in every value.
::testing::AssertionResult BitEqual(const models::EmbeddingMatrix& a,
                                    const models::EmbeddingMatrix& b) {
  if (a.rows != b.rows || a.dim != b.dim) {
    return ::testing::AssertionFailure() << a.rows << "x" << a.dim << " vs " << b.rows << "x"
                                         << b.dim;
  }
  for (size_t r = 0; r < a.rows; ++r) {
    if (std::memcmp(a.Row(r), b.Row(r), a.dim * sizeof(float)) != 0) {
      return ::testing::AssertionFailure() << "row " << r << " differs";
    }
  }
  return ::testing::AssertionSuccess();
}

// LoadEncoder loads the demo image encoder with its manifest changed by `edit`: the same
// network under another geometry, or a manifest that does not match the model (a fault).
std::unique_ptr<models::ImageEncoder> LoadEncoder(void (*edit)(models::ModelManifest&)) {
  const std::string folder = FixtureDir() + "/demo/image_encoder";
  auto manifest = server::ReadManifest(folder, models::ModelKind::kImageEncoder);
  EXPECT_TRUE(manifest.ok()) << manifest.status();
  auto module = models::LoadTorchScriptModule(folder + "/model.pt");
  EXPECT_TRUE(module.ok()) << module.status();
  if (!manifest.ok() || !module.ok()) return nullptr;
  edit(*manifest);
  auto encoder = models::ImageEncoder::Create(*std::move(manifest), *std::move(module));
  EXPECT_TRUE(encoder.ok()) << encoder.status();
  return encoder.ok() ? *std::move(encoder) : nullptr;
}

TEST(SameGeometryTest, EveryFieldOfTheSpecCounts) {
  const image::PreprocessSpec base;
  EXPECT_TRUE(image::SameGeometry(base, image::PreprocessSpec{}));
  std::vector<image::PreprocessSpec> changed(6, base);
  changed[0].size = 112;
  changed[1].resize_mode = image::ResizeMode::kLetterbox;
  changed[2].interpolation = image::Interpolation::kBilinear;
  changed[3].mean[2] = 0.5f;
  changed[4].std[1] = 0.5f;
  changed[5].letterbox_fill[0] = 127;
  for (size_t i = 0; i < changed.size(); ++i) {
    EXPECT_FALSE(image::SameGeometry(base, changed[i])) << i;
    EXPECT_FALSE(image::SameGeometry(changed[i], base)) << i;
  }
}

class ImageCallsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(FixtureDir() + "/demo/clip/model.pt")) {
      GTEST_SKIP() << "fixture models not found in " << FixtureDir()
                   << " (the make_test_fixtures step needs ../shared/data)";
    }
    auto models = server::LoadModelSet(FixtureDir() + "/demo");
    ASSERT_TRUE(models.ok()) << models.status();
    models_ = *std::move(models);
    ASSERT_NE(models_.image_encoder, nullptr);
    // Sizes that shrink, enlarge and crop, wide and tall, so centre crop and stretch differ.
    const int sizes[][2] = {{300, 200}, {120, 260}, {64, 64}, {500, 90}, {33, 47}, {224, 224}};
    int seed = 1;
    for (const auto& size : sizes) {
      auto image = image::DecodeImage(testing::NoiseImage(size[0], size[1], seed++, ".png"),
                                      image::DecodeLimits{});
      ASSERT_TRUE(image.ok()) << image.status();
      images_.push_back(std::move(*image));
    }
    for (const image::Image& image : images_) pointers_.push_back(&image);
    caption_options_.max_new_tokens = 6;
  }

  ImageCalls AllCalls() const {
    ImageCalls calls;
    calls.clip_image = true;
    calls.features = true;
    calls.caption_options = &caption_options_;
    calls.caption_images = {pointers_[1], pointers_[4]};
    return calls;
  }

  // ExpectSameAsDirect checks every result of AllCalls() against the models called directly.
  void ExpectSameAsDirect(const ImageResults& got, const models::ImageEncoder& encoder) {
    auto clip = models_.clip->EncodeImages(pointers_);
    auto features = encoder.EncodeImages(pointers_);
    auto captions = models_.captioner->Caption({pointers_[1], pointers_[4]}, caption_options_);
    ASSERT_TRUE(clip.ok() && features.ok() && captions.ok());
    ASSERT_TRUE(got.clip_image.ok()) << got.clip_image.status();
    ASSERT_TRUE(got.features.ok()) << got.features.status();
    ASSERT_TRUE(got.captions.ok()) << got.captions.status();
    EXPECT_TRUE(BitEqual(*got.clip_image, *clip));
    EXPECT_TRUE(BitEqual(*got.features, *features));
    EXPECT_EQ(*got.captions, *captions);
  }

  ModelSet models_;
  std::vector<image::Image> images_;
  std::vector<const image::Image*> pointers_;
  models::CaptionOptions caption_options_;
};

TEST_F(ImageCallsTest, DemoClipAndImageEncoderShareOneGeometry) {
  // What the preprocess-once test below relies on (tools/fixtures/make_models.py, CLIP_IMAGE).
  EXPECT_TRUE(image::SameGeometry(models_.clip->manifest().image,
                                  models_.image_encoder->manifest().image));
  EXPECT_FALSE(image::SameGeometry(models_.clip->manifest().image,
                                   models_.captioner->manifest().image));
}

TEST_F(ImageCallsTest, OverlappedCallsAreBitIdenticalAndPreprocessOncePerGeometry) {
  for (bool enabled : {true, false}) {
    SCOPED_TRACE(enabled ? "batching (overlapped)" : "no batching (one after the other)");
    BatchingOptions options;
    options.enabled = enabled;
    Batchers batchers(models_.clip.get(), models_.captioner.get(), models_.image_encoder.get(),
                      options, nullptr);
    ImageResults got = batchers.RunImageCalls(pointers_, AllCalls(), ModelCall{});
    ExpectSameAsDirect(got, *models_.image_encoder);
    // One tensor per image for CLIP and the encoder together, not one per model.
    EXPECT_EQ(batchers.TensorsPreprocessed(), static_cast<int64_t>(images_.size()));
  }
}

TEST_F(ImageCallsTest, ModelsOfDifferentGeometriesEachGetTheirOwnTensor) {
  // The same encoder network, fed stretched instead of centre-cropped images.
  std::unique_ptr<models::ImageEncoder> stretched = LoadEncoder(
      [](models::ModelManifest& m) { m.image.resize_mode = image::ResizeMode::kStretch; });
  ASSERT_NE(stretched, nullptr);
  ASSERT_FALSE(image::SameGeometry(models_.clip->manifest().image, stretched->manifest().image));
  Batchers batchers(models_.clip.get(), models_.captioner.get(), stretched.get(),
                    BatchingOptions{}, nullptr);
  ImageResults got = batchers.RunImageCalls(pointers_, AllCalls(), ModelCall{});
  ExpectSameAsDirect(got, *stretched);
  EXPECT_EQ(batchers.TensorsPreprocessed(), 2 * static_cast<int64_t>(images_.size()));
  // And the encoder's rows are not the centre-cropped ones.
  auto cropped = models_.image_encoder->EncodeImages(pointers_);
  ASSERT_TRUE(cropped.ok());
  EXPECT_FALSE(BitEqual(*got.features, *cropped));
}

TEST_F(ImageCallsTest, OneFailingCallGivesItsOwnErrorAndTheOthersTheirResults) {
  // The encoder's manifest promises 47 values; the network returns 48: the model's INTERNAL
  // error, as a direct call gives it.
  std::unique_ptr<models::ImageEncoder> broken =
      LoadEncoder([](models::ModelManifest& m) { m.embedding_dim = 47; });
  ASSERT_NE(broken, nullptr);
  const absl::Status direct = broken->EncodeImages(pointers_).status();
  ASSERT_EQ(direct.code(), absl::StatusCode::kInternal) << direct;
  for (bool enabled : {true, false}) {
    SCOPED_TRACE(enabled ? "batching (overlapped)" : "no batching (one after the other)");
    BatchingOptions options;
    options.enabled = enabled;
    Batchers batchers(models_.clip.get(), models_.captioner.get(), broken.get(), options,
                      nullptr);
    ImageResults got = batchers.RunImageCalls(pointers_, AllCalls(), ModelCall{});
    EXPECT_EQ(got.features.status(), direct);
    auto clip = models_.clip->EncodeImages(pointers_);
    ASSERT_TRUE(clip.ok());
    ASSERT_TRUE(got.clip_image.ok()) << got.clip_image.status();
    EXPECT_TRUE(BitEqual(*got.clip_image, *clip));
    ASSERT_TRUE(got.captions.ok()) << got.captions.status();
    EXPECT_EQ(got.captions->size(), 2u);
  }
}

TEST_F(ImageCallsTest, APassedDeadlineFailsEveryCallWithTheBatchersError) {
  Batchers batchers(models_.clip.get(), models_.captioner.get(), models_.image_encoder.get(),
                    BatchingOptions{}, nullptr);
  ModelCall late;
  late.deadline = absl::Now() - absl::Seconds(1);
  ImageResults got = batchers.RunImageCalls(pointers_, AllCalls(), late);
  // Each as its one-call method says it (the batcher names itself).
  EXPECT_EQ(got.clip_image.status(), batchers.EncodeImages(pointers_, late).status());
  EXPECT_EQ(got.features.status(), batchers.EncodeImageFeatures(pointers_, late).status());
  EXPECT_EQ(got.captions.status(),
            batchers.Caption(AllCalls().caption_images, caption_options_, late).status());
  EXPECT_EQ(got.clip_image.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(got.features.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(got.captions.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(batchers.TensorsPreprocessed(), 0);  // nothing reached a model
}

// NearEqual: the same shape and every value within `tolerance` (a batch of another size may
// round differently in the last bits).
::testing::AssertionResult NearEqual(const models::EmbeddingMatrix& a,
                                     const models::EmbeddingMatrix& b, float tolerance) {
  if (a.rows != b.rows || a.dim != b.dim) {
    return ::testing::AssertionFailure() << a.rows << "x" << a.dim << " vs " << b.rows << "x"
                                         << b.dim;
  }
  for (size_t i = 0; i < a.values.size(); ++i) {
    if (!(std::abs(a.values[i] - b.values[i]) <= tolerance)) {
      return ::testing::AssertionFailure()
             << "value " << i << " (row " << i / a.dim << "): " << a.values[i] << " vs "
             << b.values[i];
    }
  }
  return ::testing::AssertionSuccess();
}

// Concurrent callers, two batcher threads per model (as the server runs them): a batch mixes
// several calls' images, two batches of a model run at once, and each image's shared tensor is
// made by whichever model comes first and freed by whichever reads it last, while other calls
// free theirs. The sanitizer builds check the memory and locking (`make test-asan`,
// `make test-tsan`); here every caller must get its own images' rows and captions.
TEST_F(ImageCallsTest, ConcurrentCallersOnTwoThreadsPerModelEachGetTheirOwnResults) {
  constexpr int kCallers = 6, kRounds = 4;
  // Caller c: images c, c+1, ... (wrapping), 1 + c % 3 of them; it captions its first one.
  std::vector<std::vector<const image::Image*>> caller_images(kCallers);
  std::vector<models::EmbeddingMatrix> want_clip, want_features;
  std::vector<std::string> want_caption;
  for (int c = 0; c < kCallers; ++c) {
    for (int k = 0; k < 1 + c % 3; ++k) {
      caller_images[c].push_back(pointers_[(c + k) % pointers_.size()]);
    }
    auto clip = models_.clip->EncodeImages(caller_images[c]);
    auto features = models_.image_encoder->EncodeImages(caller_images[c]);
    auto caption = models_.captioner->Caption({caller_images[c][0]}, caption_options_);
    ASSERT_TRUE(clip.ok() && features.ok() && caption.ok());
    want_clip.push_back(*std::move(clip));
    want_features.push_back(*std::move(features));
    want_caption.push_back((*caption)[0]);
  }
  BatchingOptions options;
  for (batching::BatcherOptions* o :
       {&options.clip_image, &options.image_encoder, &options.captioner}) {
    o->threads = 2;
    o->max_batch_size = 4;  // smaller than what waits, so groups split over batches too
  }
  Batchers batchers(models_.clip.get(), models_.captioner.get(), models_.image_encoder.get(),
                    options, nullptr);
  std::vector<std::vector<ImageResults>> got(kCallers);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (int round = 0; round < kRounds; ++round) {
        ImageCalls calls;
        calls.clip_image = true;
        calls.features = true;
        calls.caption_options = &caption_options_;
        calls.caption_images = {caller_images[c][0]};
        got[c].push_back(batchers.RunImageCalls(caller_images[c], calls, ModelCall{}));
      }
    });
  }
  for (std::thread& t : callers) t.join();
  for (int c = 0; c < kCallers; ++c) {
    for (int round = 0; round < kRounds; ++round) {
      SCOPED_TRACE(absl::StrCat("caller ", c, ", round ", round));
      const ImageResults& r = got[c][round];
      ASSERT_TRUE(r.clip_image.ok()) << r.clip_image.status();
      ASSERT_TRUE(r.features.ok()) << r.features.status();
      ASSERT_TRUE(r.captions.ok()) << r.captions.status();
      EXPECT_TRUE(NearEqual(*r.clip_image, want_clip[c], 1e-5f));
      EXPECT_TRUE(NearEqual(*r.features, want_features[c], 1e-5f));
      EXPECT_THAT(*r.captions, ::testing::ElementsAre(want_caption[c]));
    }
  }
}

TEST_F(ImageCallsTest, FeaturesWithoutAnEncoderFailAsTheOneCallMethodDoes) {
  Batchers batchers(models_.clip.get(), models_.captioner.get(), nullptr, BatchingOptions{},
                    nullptr);
  ImageResults got = batchers.RunImageCalls(pointers_, AllCalls(), ModelCall{});
  EXPECT_EQ(got.features.status(), batchers.EncodeImageFeatures(pointers_, ModelCall{}).status());
  EXPECT_EQ(got.features.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(got.clip_image.ok()) << got.clip_image.status();
}

}  // namespace
}  // namespace retrace::engine
