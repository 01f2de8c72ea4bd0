// Real images: every file of ../shared/data/pacs-mini decodes and preprocesses. Its README
// says 224 images, 227x227, JPEG and PNG (all 56 sketches are PNG, the rest JPEG).
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include "core/image/decode.h"
#include "core/image/preprocess.h"
#include "gtest/gtest.h"
#include "tests/support/shared_data.h"

namespace retrace::image {
namespace {

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(PacsMiniTest, EveryImageDecodesAt227AndPreprocessesAt224) {
  RETRACE_REQUIRE_SHARED_DATA("pacs-mini");
  const std::filesystem::path root = retrace::testing::SharedDataPath("pacs-mini");

  // CLIP's normalisation, as a real model manifest would give it.
  PreprocessSpec spec;
  spec.mean = {0.48145466f, 0.4578275f, 0.40821073f};
  spec.std = {0.26862954f, 0.26130258f, 0.27577711f};
  ASSERT_TRUE(ValidatePreprocessSpec(spec).ok());

  std::map<std::string, int> per_extension;
  std::map<std::string, int> per_domain;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    const std::string extension = entry.path().extension().string();
    if (!entry.is_regular_file() || (extension != ".jpg" && extension != ".png")) continue;
    SCOPED_TRACE(entry.path().string());
    ++per_extension[extension];
    ++per_domain[std::filesystem::relative(entry.path(), root).begin()->string()];

    const std::string bytes = ReadFile(entry.path());
    absl::StatusOr<ImageHeader> header = ProbeImage(bytes);
    ASSERT_TRUE(header.ok()) << header.status();
    EXPECT_EQ(header->format, extension == ".jpg" ? ImageFormat::kJpeg : ImageFormat::kPng);

    absl::StatusOr<Image> image = DecodeImage(bytes, DecodeLimits{});
    ASSERT_TRUE(image.ok()) << image.status();
    EXPECT_EQ(image->width, 227);
    EXPECT_EQ(image->height, 227);

    const std::vector<float> tensor = Preprocess(*image, spec);
    ASSERT_EQ(tensor.size(), 3u * 224 * 224);
    for (int c = 0; c < 3; ++c) {
      const float low = (0.0f - spec.mean[c]) / spec.std[c] - 1e-4f;
      const float high = (1.0f - spec.mean[c]) / spec.std[c] + 1e-4f;
      for (size_t i = c * 224 * 224; i < (c + 1) * size_t{224 * 224}; ++i) {
        ASSERT_TRUE(tensor[i] >= low && tensor[i] <= high) << "c=" << c << " value " << tensor[i];
      }
    }
  }
  EXPECT_EQ(per_extension[".jpg"] + per_extension[".png"], 224);
  EXPECT_EQ(per_extension[".png"], 56);
  EXPECT_EQ(per_domain, (std::map<std::string, int>{
                            {"art_painting", 56}, {"cartoon", 56}, {"photo", 56}, {"sketch", 56}}));
}

}  // namespace
}  // namespace retrace::image
