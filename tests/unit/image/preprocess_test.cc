// Tests for Preprocess / PreprocessInto / ValidatePreprocessSpec: exact normalisation,
// torchvision's centre-crop geometry, letterbox padding, and antialiased shrinking.
#include "core/image/preprocess.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace retrace::image {
namespace {

using ::testing::HasSubstr;

// MakeImage returns a width x height image filled with `rgb`.
Image MakeImage(int width, int height, std::array<uint8_t, 3> rgb) {
  Image image;
  image.width = width;
  image.height = height;
  for (int i = 0; i < width * height; ++i)
    image.rgb.insert(image.rgb.end(), rgb.begin(), rgb.end());
  return image;
}

void SetPixel(Image& image, int x, int y, std::array<uint8_t, 3> rgb) {
  const size_t i = (static_cast<size_t>(y) * image.width + x) * 3;
  image.rgb[i] = rgb[0];
  image.rgb[i + 1] = rgb[1];
  image.rgb[i + 2] = rgb[2];
}

// At returns channel c at (x, y) of a CHW tensor of side `size`.
float At(const std::vector<float>& chw, int size, int c, int x, int y) {
  return chw[(static_cast<size_t>(c) * size + y) * size + x];
}

PreprocessSpec Spec(int size, ResizeMode mode) {
  PreprocessSpec spec;
  spec.size = size;
  spec.resize_mode = mode;
  return spec;
}

TEST(PreprocessTest, ExactValuesOnAHandMadeImage) {
  Image image = MakeImage(2, 2, {0, 0, 0});
  SetPixel(image, 0, 0, {255, 0, 0});
  SetPixel(image, 1, 0, {0, 255, 0});
  SetPixel(image, 0, 1, {0, 0, 255});
  SetPixel(image, 1, 1, {51, 102, 204});
  PreprocessSpec spec = Spec(2, ResizeMode::kStretch);
  spec.mean = {0.5f, 0.5f, 0.5f};
  spec.std = {0.5f, 0.25f, 0.2f};
  const std::vector<float> out = Preprocess(image, spec);
  // (pixel / 255 - mean) / std, worked by hand; planes R, G, B; rows (0,0) (1,0) (0,1) (1,1).
  const std::vector<float> expected = {
      1.0f,  -1.0f, -1.0f, -0.6f,  // R: 255, 0, 0, 51
      -2.0f, 2.0f,  -2.0f, -0.4f,  // G: 0, 255, 0, 102
      -2.5f, -2.5f, 2.5f,  1.5f,   // B: 0, 0, 255, 204
  };
  ASSERT_EQ(out.size(), expected.size());
  for (size_t i = 0; i < out.size(); ++i) EXPECT_NEAR(out[i], expected[i], 1e-5) << "index " << i;
}

TEST(PreprocessTest, OutputLengthAndConstantImagesForEveryMode) {
  const Image image = MakeImage(37, 23, {10, 100, 250});
  for (ResizeMode mode :
       {ResizeMode::kShortestSideCenterCrop, ResizeMode::kLetterbox, ResizeMode::kStretch}) {
    for (Interpolation interpolation : {Interpolation::kBicubic, Interpolation::kBilinear}) {
      for (int size : {1, 5, 64}) {
        PreprocessSpec spec = Spec(size, mode);
        spec.interpolation = interpolation;
        spec.letterbox_fill = {10, 100, 250};  // same colour: the output must be uniform
        const std::vector<float> out = Preprocess(image, spec);
        ASSERT_EQ(out.size(), 3u * size * size);
        for (int y = 0; y < size; ++y) {
          for (int x = 0; x < size; ++x) {
            ASSERT_NEAR(At(out, size, 0, x, y), 10 / 255.0, 1e-6);
            ASSERT_NEAR(At(out, size, 1, x, y), 100 / 255.0, 1e-6);
            ASSERT_NEAR(At(out, size, 2, x, y), 250 / 255.0, 1e-6);
          }
        }
      }
    }
  }
}

TEST(PreprocessTest, PreprocessIntoWritesExactlyItsSlot) {
  const Image image = MakeImage(4, 4, {255, 255, 255});
  const PreprocessSpec spec = Spec(3, ResizeMode::kStretch);
  std::vector<float> batch(2 + 27 + 2, -7.0f);
  PreprocessInto(image, spec, batch.data() + 2);
  EXPECT_EQ(batch[0], -7.0f);
  EXPECT_EQ(batch[1], -7.0f);
  for (int i = 2; i < 29; ++i) EXPECT_NEAR(batch[i], 1.0f, 1e-6);
  EXPECT_EQ(batch[29], -7.0f);
  EXPECT_EQ(batch[30], -7.0f);
}

// torchvision CenterCrop: top/left = int(round((h - size) / 2.0)), Python rounding (halves to
// even). Columns keep their source x in the red channel; with the short side already at
// `size` there is no resampling, so the crop offset shows exactly.
TEST(PreprocessTest, CenterCropOffsetsMatchTorchvision) {
  struct Case {
    int width;
    int expected_left;  // round((width - 2) / 2.0) in Python
  };
  for (const Case& c : {Case{5, 2} /*1.5 -> 2*/, Case{6, 2}, Case{7, 2} /*2.5 -> 2*/,
                        Case{9, 4} /*3.5 -> 4*/, Case{3, 0} /*0.5 -> 0*/}) {
    SCOPED_TRACE(c.width);
    Image image = MakeImage(c.width, 2, {0, 0, 0});
    for (int x = 0; x < c.width; ++x) {
      SetPixel(image, x, 0, {static_cast<uint8_t>(10 * x), 0, 0});
      SetPixel(image, x, 1, {static_cast<uint8_t>(10 * x), 0, 0});
    }
    const std::vector<float> out = Preprocess(image, Spec(2, ResizeMode::kShortestSideCenterCrop));
    EXPECT_NEAR(At(out, 2, 0, 0, 0) * 255, 10 * c.expected_left, 1e-3);
    EXPECT_NEAR(At(out, 2, 0, 1, 0) * 255, 10 * (c.expected_left + 1), 1e-3);
  }
}

TEST(PreprocessTest, CenterCropCutsAwayTheLeftBandOfAWideImage) {
  // 300x200: red band x < 40, a green marker column band 145 <= x < 155, blue elsewhere.
  // Short side 200 -> 100 (scale 1/2): 150x100, crop x from 25, i.e. source x 50..249.
  Image image = MakeImage(300, 200, {0, 0, 255});
  for (int y = 0; y < 200; ++y) {
    for (int x = 0; x < 40; ++x) SetPixel(image, x, y, {255, 0, 0});
    for (int x = 145; x < 155; ++x) SetPixel(image, x, y, {0, 255, 0});
  }
  const std::vector<float> out = Preprocess(image, Spec(100, ResizeMode::kShortestSideCenterCrop));
  ASSERT_EQ(out.size(), 3u * 100 * 100);
  for (int y = 0; y < 100; ++y) {
    for (int x = 0; x < 100; ++x) ASSERT_LT(At(out, 100, 0, x, y), 0.05f) << x << "," << y;
  }
  // The marker (source 145..154) lands at output 72.5 - 25 .. 77.5 - 25, around x = 50.
  EXPECT_GT(At(out, 100, 1, 50, 50), 0.9f);
  EXPECT_LT(At(out, 100, 1, 40, 50), 0.05f);
  EXPECT_LT(At(out, 100, 1, 60, 50), 0.05f);
  EXPECT_GT(At(out, 100, 2, 0, 50), 0.95f);  // leftmost column is blue, not red
}

TEST(PreprocessTest, CenterCropOfATallImageCropsRows) {
  // 100x300: top 90 rows red (cropped: resized to 100x300, rows from 100), rest blue.
  Image image = MakeImage(100, 300, {0, 0, 255});
  for (int y = 0; y < 90; ++y) {
    for (int x = 0; x < 100; ++x) SetPixel(image, x, y, {255, 0, 0});
  }
  const std::vector<float> out = Preprocess(image, Spec(100, ResizeMode::kShortestSideCenterCrop));
  for (int x = 0; x < 100; ++x) ASSERT_LT(At(out, 100, 0, x, 0), 0.01f);
}

// Found by fuzz/image_decode_fuzzer (an 8208x16 JPEG of 462 bytes timed out): upscaling a thin
// image for the centre crop made an intermediate of size x (size * aspect ratio) pixels; for
// 1 x 16384 at 224 that is 2.5 GB. Only the kept window is computed now.
TEST(PreprocessTest, CenterCropOfAThinImageComputesOnlyTheWindow) {
  Image image = MakeImage(1, 16384, {0, 0, 0});
  for (int y = 0; y < 16384; ++y) {
    SetPixel(image, 0, y, {static_cast<uint8_t>(y * 255 / 16383), 77, 200});
  }
  const std::vector<float> out = Preprocess(image, Spec(224, ResizeMode::kShortestSideCenterCrop));
  ASSERT_EQ(out.size(), 3u * 224 * 224);
  // 224 output rows cover about one source row, at the middle: red about 127 everywhere.
  for (int y = 0; y < 224; y += 37) {
    for (int x = 0; x < 224; x += 37) {
      EXPECT_NEAR(At(out, 224, 0, x, y) * 255, 127.5, 1.0) << x << "," << y;
      EXPECT_NEAR(At(out, 224, 1, x, y) * 255, 77, 1e-3);
      EXPECT_NEAR(At(out, 224, 2, x, y) * 255, 200, 1e-3);
    }
  }
}

// The window path samples where resize-then-crop does: compare both on a 12x100 image (aspect
// above 4:1, small enough to resize whole) for both interpolations.
TEST(PreprocessTest, CenterCropWindowMatchesResizeThenCrop) {
  Image image = MakeImage(12, 100, {0, 0, 0});
  for (int y = 0; y < 100; ++y) {
    for (int x = 0; x < 12; ++x) {
      SetPixel(image, x, y, {static_cast<uint8_t>((x * 37 + y * 11) % 256),
                             static_cast<uint8_t>((x * y * 7) % 256),
                             static_cast<uint8_t>(y % 2 == 0 ? 250 : 5)});
    }
  }
  for (Interpolation interpolation : {Interpolation::kBicubic, Interpolation::kBilinear}) {
    PreprocessSpec spec = Spec(48, ResizeMode::kShortestSideCenterCrop);
    spec.interpolation = interpolation;
    const std::vector<float> out = Preprocess(image, spec);
    // torchvision's geometry: 48 x int(48 * 100 / 12) = 48 x 400, rows from round(352 / 2).
    const cv::Mat rgb(100, 12, CV_8UC3, image.rgb.data());
    cv::Mat resized;
    cv::resize(rgb, resized, cv::Size(48, 400), 0, 0,
               interpolation == Interpolation::kBilinear ? cv::INTER_LINEAR : cv::INTER_CUBIC);
    for (int y = 0; y < 48; ++y) {
      for (int x = 0; x < 48; ++x) {
        for (int c = 0; c < 3; ++c) {
          ASSERT_NEAR(At(out, 48, c, x, y) * 255, resized.at<cv::Vec3b>(176 + y, x)[c], 1.0)
              << "interpolation " << static_cast<int>(interpolation) << " at " << x << "," << y
              << " channel " << c;
        }
      }
    }
  }
}

TEST(PreprocessTest, LetterboxPadsAWideImageTopAndBottom) {
  // 200x100 -> 100x50, centred: rows 25..74 image, rows 0..24 and 75..99 fill.
  const Image image = MakeImage(200, 100, {10, 200, 30});
  PreprocessSpec spec = Spec(100, ResizeMode::kLetterbox);
  spec.letterbox_fill = {255, 0, 128};
  const std::vector<float> out = Preprocess(image, spec);
  ASSERT_EQ(out.size(), 3u * 100 * 100);
  for (int y = 0; y < 100; ++y) {
    const bool fill = y < 25 || y >= 75;
    const std::array<int, 3> expected =
        fill ? std::array<int, 3>{255, 0, 128} : std::array<int, 3>{10, 200, 30};
    for (int x = 0; x < 100; ++x) {
      for (int c = 0; c < 3; ++c) {
        ASSERT_NEAR(At(out, 100, c, x, y), expected[c] / 255.0, 1e-6)
            << "x=" << x << " y=" << y << " c=" << c;
      }
    }
  }
}

TEST(PreprocessTest, LetterboxPadsATallImageLeftAndRight) {
  const Image image = MakeImage(50, 200, {255, 255, 255});  // -> 25x100, columns 37..61
  const std::vector<float> out = Preprocess(image, Spec(100, ResizeMode::kLetterbox));
  EXPECT_NEAR(At(out, 100, 0, 36, 50), 0.0f, 1e-6);
  EXPECT_NEAR(At(out, 100, 0, 37, 50), 1.0f, 1e-6);
  EXPECT_NEAR(At(out, 100, 0, 61, 50), 1.0f, 1e-6);
  EXPECT_NEAR(At(out, 100, 0, 62, 50), 0.0f, 1e-6);
}

TEST(PreprocessTest, StretchKeepsEverything) {
  // 200x100 with the left half red: after stretching to 50x50 the left half is still red.
  Image image = MakeImage(200, 100, {0, 0, 255});
  for (int y = 0; y < 100; ++y) {
    for (int x = 0; x < 100; ++x) SetPixel(image, x, y, {255, 0, 0});
  }
  const std::vector<float> out = Preprocess(image, Spec(50, ResizeMode::kStretch));
  EXPECT_GT(At(out, 50, 0, 10, 0), 0.99f);
  EXPECT_GT(At(out, 50, 0, 10, 49), 0.99f);
  EXPECT_LT(At(out, 50, 0, 40, 25), 0.01f);
}

TEST(PreprocessTest, LargeReductionsAreAntialiased) {
  // A 1-pixel checkerboard averages to mid grey; plain bicubic sampling at a factor of ~10
  // would pick mostly-black or mostly-white neighbourhoods (aliasing) instead.
  Image image = MakeImage(1000, 1000, {0, 0, 0});
  for (int y = 0; y < 1000; ++y) {
    for (int x = (y % 2); x < 1000; x += 2) SetPixel(image, x, y, {255, 255, 255});
  }
  for (Interpolation interpolation : {Interpolation::kBicubic, Interpolation::kBilinear}) {
    PreprocessSpec spec = Spec(96, ResizeMode::kStretch);
    spec.interpolation = interpolation;
    const std::vector<float> out = Preprocess(image, spec);
    float worst = 0;
    for (float v : out) worst = std::max(worst, std::abs(v - 0.5f));
    EXPECT_LT(worst, 0.05f) << "interpolation " << static_cast<int>(interpolation);
  }
}

TEST(ValidatePreprocessSpecTest, AcceptsDefaultsAndBounds) {
  EXPECT_TRUE(ValidatePreprocessSpec(PreprocessSpec{}).ok());
  EXPECT_TRUE(ValidatePreprocessSpec(Spec(1, ResizeMode::kStretch)).ok());
  EXPECT_TRUE(ValidatePreprocessSpec(Spec(4096, ResizeMode::kLetterbox)).ok());
}

TEST(ValidatePreprocessSpecTest, RejectsBadFieldsByName) {
  auto expect_invalid = [](const PreprocessSpec& spec, const std::string& field) {
    const absl::Status status = ValidatePreprocessSpec(spec);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(std::string(status.message()), HasSubstr(field));
  };
  expect_invalid(Spec(0, ResizeMode::kStretch), "PreprocessSpec.size is 0");
  expect_invalid(Spec(-3, ResizeMode::kStretch), "PreprocessSpec.size is -3");
  expect_invalid(Spec(4097, ResizeMode::kStretch), "PreprocessSpec.size is 4097");
  PreprocessSpec spec;
  spec.std = {1, 0, 1};
  expect_invalid(spec, "PreprocessSpec.std[1]");
  spec.std = {1, 1, -0.5f};
  expect_invalid(spec, "PreprocessSpec.std[2]");
  spec.std = {std::numeric_limits<float>::quiet_NaN(), 1, 1};
  expect_invalid(spec, "PreprocessSpec.std[0]");
  spec = PreprocessSpec{};
  spec.mean = {0, std::numeric_limits<float>::infinity(), 0};
  expect_invalid(spec, "PreprocessSpec.mean[1]");
  spec = PreprocessSpec{};
  spec.resize_mode = static_cast<ResizeMode>(7);
  expect_invalid(spec, "PreprocessSpec.resize_mode");
  spec = PreprocessSpec{};
  spec.interpolation = static_cast<Interpolation>(-1);
  expect_invalid(spec, "PreprocessSpec.interpolation");
}

TEST(PreprocessDeathTest, ViolatedRequiresAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // OpenCV may have started worker threads
  Image broken = MakeImage(2, 2, {1, 2, 3});
  broken.rgb.pop_back();
  EXPECT_DEATH(Preprocess(broken, PreprocessSpec{}), "width \\* height \\* 3");
  EXPECT_DEATH(Preprocess(MakeImage(2, 2, {1, 2, 3}), Spec(0, ResizeMode::kStretch)),
               "PreprocessSpec.size is 0");
}

}  // namespace
}  // namespace retrace::image
