// test_images.h — small encoded images for end-to-end tests, made with OpenCV.
//
// Thread-safety: pure functions.
//
//   std::string png = retrace::testing::SolidImage(64, 48, {255, 0, 0}, ".png");
#ifndef RETRACE_TESTS_SUPPORT_TEST_IMAGES_H_
#define RETRACE_TESTS_SUPPORT_TEST_IMAGES_H_

#include <array>
#include <cstdint>
#include <string>

namespace retrace::testing {

// SolidImage encodes a width x height image of one RGB colour; `ext` is ".png", ".jpg", ".bmp"
// or ".webp".
std::string SolidImage(int width, int height, std::array<uint8_t, 3> rgb, const std::string& ext);

// NoiseImage encodes random pixels (fixed by `seed`), so two seeds give different images.
std::string NoiseImage(int width, int height, int seed, const std::string& ext);

}  // namespace retrace::testing

#endif  // RETRACE_TESTS_SUPPORT_TEST_IMAGES_H_
