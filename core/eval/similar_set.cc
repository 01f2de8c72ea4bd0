#include "core/eval/similar_set.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <new>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <unordered_set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/image/decode.h"
#include "core/image/image_files.h"

namespace retrace::eval {
namespace {

namespace fs = std::filesystem;

constexpr char kManifestKind[] = "\"kind\": \"retrace-similar-set\"";
constexpr int kSlots = 12;  // the 11 single kinds, then one chain

// Fnv1a64: a stable hash of a reference id (std::hash may differ between library builds).
uint64_t Fnv1a64(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t ReferenceSeed(uint64_t seed, const std::string& reference_id) {
  return SplitMix64(seed ^ SplitMix64(Fnv1a64(reference_id)));
}

// Uniform in [lo, hi), from the raw output so the values do not depend on the standard
// library's distribution algorithms.
double Uniform(std::mt19937_64& rng, double lo, double hi) {
  return lo + (hi - lo) * static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

int UniformInt(std::mt19937_64& rng, int lo, int hi) {  // [lo, hi]
  return lo + static_cast<int>(rng() % static_cast<uint64_t>(hi - lo + 1));
}

double Round(double x, int decimals) {
  const double scale = std::pow(10.0, decimals);
  return std::round(x * scale) / scale;
}

template <typename T>
void Shuffle(std::vector<T>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng() % i]);
}

int Px(double fraction, int side) {
  return std::max(1, static_cast<int>(std::lround(fraction * side)));
}

// ApplyStep: `step` on a BGR image, in place. May throw cv::Exception.
void ApplyStep(const TransformStep& step, cv::Mat& img) {
  const int w = img.cols, h = img.rows;
  cv::Mat out;
  switch (step.kind) {
    case TransformKind::kCrop: {
      const int cw = std::min(w, Px(step.Param("w"), w));
      const int ch = std::min(h, Px(step.Param("h"), h));
      const int x = std::clamp(static_cast<int>(std::lround(step.Param("x") * w)), 0, w - cw);
      const int y = std::clamp(static_cast<int>(std::lround(step.Param("y") * h)), 0, h - ch);
      out = img(cv::Rect(x, y, cw, ch)).clone();
      break;
    }
    case TransformKind::kScale: {
      const double s = step.Param("s");
      cv::resize(img, out, cv::Size(Px(s, w), Px(s, h)), 0, 0,
                 s < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
      break;
    }
    case TransformKind::kRotate: {
      const double deg = step.Param("deg");
      if (deg == 90) {
        cv::rotate(img, out, cv::ROTATE_90_COUNTERCLOCKWISE);
      } else if (deg == 180) {
        cv::rotate(img, out, cv::ROTATE_180);
      } else if (deg == 270) {
        cv::rotate(img, out, cv::ROTATE_90_CLOCKWISE);
      } else {
        const cv::Mat m = cv::getRotationMatrix2D(cv::Point2f(w / 2.0f, h / 2.0f), deg, 1.0);
        cv::warpAffine(img, out, m, img.size(), cv::INTER_LINEAR, cv::BORDER_CONSTANT,
                       cv::Scalar(0, 0, 0));
      }
      break;
    }
    case TransformKind::kFlip:
      cv::flip(img, out, step.Param("vertical") != 0 ? 0 : 1);
      break;
    case TransformKind::kColourJitter: {
      cv::Mat f, gray, gray3;
      img.convertTo(f, CV_32F, step.Param("c"), step.Param("b") * 255.0);
      cv::cvtColor(f, gray, cv::COLOR_BGR2GRAY);
      cv::cvtColor(gray, gray3, cv::COLOR_GRAY2BGR);
      const double s = step.Param("s");
      cv::addWeighted(f, s, gray3, 1.0 - s, 0.0, f);
      f.convertTo(out, CV_8U);
      break;
    }
    case TransformKind::kBlur:
      cv::GaussianBlur(img, out, cv::Size(0, 0), step.Param("sigma"));
      break;
    case TransformKind::kNoise: {
      cv::Mat f, noise(img.size(), CV_32FC3);
      cv::RNG cv_rng(static_cast<uint64_t>(step.Param("seed")));
      cv_rng.fill(noise, cv::RNG::NORMAL, 0.0, step.Param("std"));
      img.convertTo(f, CV_32F);
      f += noise;
      f.convertTo(out, CV_8U);
      break;
    }
    case TransformKind::kJpeg: {
      std::vector<uchar> bytes;
      cv::imencode(".jpg", img, bytes,
                   {cv::IMWRITE_JPEG_QUALITY, static_cast<int>(step.Param("q"))});
      out = cv::imdecode(bytes, cv::IMREAD_COLOR);
      if (out.empty()) throw cv::Exception(0, "JPEG round trip failed", "ApplyStep", "", 0);
      break;
    }
    case TransformKind::kTextOverlay: {
      out = img.clone();
      const int face = cv::FONT_HERSHEY_SIMPLEX;
      int baseline = 0;
      const cv::Size unit = cv::getTextSize(step.text, face, 1.0, 1, &baseline);
      const double scale = step.Param("size") * h / std::max(1, unit.height);
      const int thickness = std::max(1, static_cast<int>(std::lround(scale * 2)));
      const cv::Point at(static_cast<int>(std::lround(step.Param("x") * w)),
                         static_cast<int>(std::lround(step.Param("y") * h)));
      const cv::Scalar colour(step.Param("b"), step.Param("g"), step.Param("r"));
      const cv::Scalar outline(255 - colour[0], 255 - colour[1], 255 - colour[2]);
      cv::putText(out, step.text, at, face, scale, outline, thickness + 2, cv::LINE_AA);
      cv::putText(out, step.text, at, face, scale, colour, thickness, cv::LINE_AA);
      break;
    }
    case TransformKind::kEmojiOverlay: {
      out = img.clone();
      const int r = std::max(3, Px(step.Param("r"), std::min(w, h)));
      const cv::Point c(static_cast<int>(std::lround(step.Param("x") * w)),
                        static_cast<int>(std::lround(step.Param("y") * h)));
      const cv::Scalar yellow(0, 215, 255), dark(20, 20, 20);
      const int line = std::max(1, r / 12);
      cv::circle(out, c, r, yellow, cv::FILLED, cv::LINE_AA);
      cv::circle(out, c, r, dark, line, cv::LINE_AA);
      const int eye = std::max(1, r / 8);
      cv::circle(out, c + cv::Point(-r * 35 / 100, -r * 3 / 10), eye, dark, cv::FILLED,
                 cv::LINE_AA);
      cv::circle(out, c + cv::Point(r * 35 / 100, -r * 3 / 10), eye, dark, cv::FILLED, cv::LINE_AA);
      cv::ellipse(out, c + cv::Point(0, r / 10), cv::Size(r * 55 / 100, r * 45 / 100), 0, 20, 160,
                  dark, line + 1, cv::LINE_AA);
      break;
    }
    case TransformKind::kPad: {
      const double v = step.Param("v");
      cv::copyMakeBorder(img, out, Px(step.Param("top"), h), Px(step.Param("bottom"), h),
                         Px(step.Param("left"), w), Px(step.Param("right"), w), cv::BORDER_CONSTANT,
                         cv::Scalar(v, v, v));
      break;
    }
  }
  img = std::move(out);
}

// ApplyAll: `spec` on a BGR image, in place, with OpenCV's exceptions as a status.
absl::Status ApplyAll(const TransformSpec& spec, size_t steps, cv::Mat& img) {
  try {
    for (size_t i = 0; i < steps; ++i) ApplyStep(spec[i], img);
  } catch (const cv::Exception& e) {
    return absl::InternalError(absl::StrCat("OpenCV: ", e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory applying transforms");
  }
  return absl::OkStatus();
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}


struct Reference {
  std::string path;
  std::string id;
};

// ListReferences walks `root` as `retrace index` does: ids relative to it, symlinks to folders
// not followed; `skip_dir` (canonical) is not entered. Unreadable folders go to `skipped`.
absl::StatusOr<std::vector<Reference>> ListReferences(const fs::path& root,
                                                      const fs::path& skip_dir,
                                                      std::vector<SkippedFile>& skipped) {
  image::FolderImages walked = image::WalkImageFolder(root.string(), skip_dir.string());
  if (walked.files.size() > kMaxSimilarReferences) {
    return absl::InvalidArgumentError(absl::StrCat(root.string(), " holds more than ",
                                                   kMaxSimilarReferences, " images; split it"));
  }
  for (const std::string& error : walked.errors) {
    const size_t colon = error.rfind(": ");
    skipped.push_back({error.substr(0, colon), colon == std::string::npos ? "" : error.substr(colon + 2)});
  }
  std::vector<Reference> found;
  for (image::FoundImage& f : walked.files) found.push_back({std::move(f.path), std::move(f.id)});
  return found;
}

// ReadBounded: the bytes of `path`, or a reason it cannot be used.
absl::StatusOr<std::string> ReadBounded(const std::string& path, uintmax_t max_bytes) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) return absl::NotFoundError(ec.message());
  if (size > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(size, " bytes; at most ", max_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad() || !in.is_open()) return absl::UnavailableError("could not read");
  if (bytes.size() > max_bytes) return absl::InvalidArgumentError("file grew while read");
  return bytes;
}

absl::Status WriteFile(const fs::path& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("could not write ", path.string()));
  return absl::OkStatus();
}

absl::Status WriteManifest(const fs::path& out_dir, const SimilarSetOptions& options,
                           const SimilarSetReport& report, bool complete) {
  const std::string json = absl::StrCat(
      "{\n  ", kManifestKind, ",\n  \"version\": 1,\n  \"seed\": ", options.seed,
      ",\n  \"per_ref\": ", options.per_ref, ",\n  \"references\": ", report.references,
      ",\n  \"queries\": ", report.queries, ",\n  \"skipped\": ", report.skipped.size(),
      ",\n  \"complete\": ", complete ? "true" : "false", "\n}\n");
  return WriteFile(out_dir / "manifest.json", json.data(), json.size());
}

// CheckOutDir: OK when `out_dir` is missing, empty or a previous build (`previous` says which);
// INVALID_ARGUMENT otherwise. Changes nothing.
absl::Status CheckOutDir(const fs::path& out_dir, bool& previous) {
  previous = false;
  std::error_code ec;
  if (!fs::exists(out_dir, ec)) return absl::OkStatus();
  if (!fs::is_directory(out_dir, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("out_dir ", out_dir.string(), " exists and is not a directory"));
  }
  if (fs::is_empty(out_dir, ec)) return absl::OkStatus();
  absl::StatusOr<std::string> manifest = ReadBounded((out_dir / "manifest.json").string(), 1 << 16);
  if (!manifest.ok() || !absl::StrContains(*manifest, kManifestKind)) {
    return absl::InvalidArgumentError(
        absl::StrCat("out_dir ", out_dir.string(),
                     " is not empty and holds no previous build (manifest.json); "
                     "give an empty or new folder"));
  }
  previous = true;
  return absl::OkStatus();
}

// PrepareOutDir: creates `out_dir`/queries, after deleting what a `previous` build wrote.
absl::Status PrepareOutDir(const fs::path& out_dir, bool previous) {
  std::error_code ec;
  if (previous) {
    fs::remove_all(out_dir / "queries", ec);
    if (!ec) fs::remove(out_dir / "ground_truth.csv", ec);
    if (!ec) fs::remove(out_dir / "manifest.json", ec);
    if (ec) return absl::UnavailableError(absl::StrCat(out_dir.string(), ": ", ec.message()));
  }
  fs::create_directories(out_dir / "queries", ec);
  if (ec) return absl::UnavailableError(absl::StrCat(out_dir.string(), ": ", ec.message()));
  return absl::OkStatus();
}

cv::Mat ToBgr(const image::Image& image) {
  cv::Mat rgb(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.rgb.data()));
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  return bgr;
}

}  // namespace

const char* TransformKindName(TransformKind kind) {
  switch (kind) {
    case TransformKind::kCrop:
      return "crop";
    case TransformKind::kScale:
      return "scale";
    case TransformKind::kRotate:
      return "rotate";
    case TransformKind::kFlip:
      return "flip";
    case TransformKind::kColourJitter:
      return "colour_jitter";
    case TransformKind::kBlur:
      return "blur";
    case TransformKind::kNoise:
      return "noise";
    case TransformKind::kJpeg:
      return "jpeg";
    case TransformKind::kTextOverlay:
      return "text_overlay";
    case TransformKind::kEmojiOverlay:
      return "emoji_overlay";
    case TransformKind::kPad:
      return "pad";
  }
  return "unknown";
}

double TransformStep::Param(const std::string& name) const {
  for (const auto& [key, value] : params) {
    if (key == name) return value;
  }
  return 0;
}

std::string TransformSpecString(const TransformSpec& spec) {
  std::vector<std::string> steps;
  for (const TransformStep& step : spec) {
    std::vector<std::string> params;
    if (step.kind == TransformKind::kTextOverlay) params.push_back("text=" + step.text);
    for (const auto& [key, value] : step.params) {
      // Whole numbers in full (StrCat would print a noise seed with 6 digits); the rest were
      // rounded to at most 3 decimals when drawn, which StrCat prints exactly.
      if (value == std::trunc(value) && std::abs(value) < 0x1.0p53) {
        params.push_back(absl::StrCat(key, "=", static_cast<int64_t>(value)));
      } else {
        params.push_back(absl::StrCat(key, "=", value));
      }
    }
    steps.push_back(
        absl::StrCat(TransformKindName(step.kind), "(", absl::StrJoin(params, ","), ")"));
  }
  return absl::StrJoin(steps, "+");
}

TransformStep DrawTransformStep(TransformKind kind, std::mt19937_64& rng) {
  TransformStep step;
  step.kind = kind;
  auto& p = step.params;
  switch (kind) {
    case TransformKind::kCrop: {
      const double w = Round(Uniform(rng, 0.5, 0.9), 3), h = Round(Uniform(rng, 0.5, 0.9), 3);
      p = {{"x", Round(Uniform(rng, 0, 1 - w), 3)},
           {"y", Round(Uniform(rng, 0, 1 - h), 3)},
           {"w", w},
           {"h", h}};
      break;
    }
    case TransformKind::kScale:
      p = {{"s", Round(Uniform(rng, 0.3, 0.9), 2)}};
      break;
    case TransformKind::kRotate: {
      double deg;
      if (Uniform(rng, 0, 1) < 0.3) {
        deg = 90.0 * UniformInt(rng, 1, 3);
      } else {
        deg = Round(Uniform(rng, 5, 40), 1) * (rng() % 2 ? 1 : -1);
      }
      p = {{"deg", deg}};
      break;
    }
    case TransformKind::kFlip:
      p = {{"vertical", static_cast<double>(rng() % 2)}};
      break;
    case TransformKind::kColourJitter: {
      // Contrast stays at least 0.15 from 1 so the change is always visible.
      const double c = Round(Uniform(rng, 0.15, 0.4), 2) * (rng() % 2 ? 1 : -1) + 1;
      p = {{"b", Round(Uniform(rng, -0.25, 0.25), 2)},
           {"c", c},
           {"s", Round(Uniform(rng, 0.4, 1.6), 2)}};
      break;
    }
    case TransformKind::kBlur:
      p = {{"sigma", Round(Uniform(rng, 1, 4), 1)}};
      break;
    case TransformKind::kNoise:
      p = {{"std", Round(Uniform(rng, 8, 25), 1)},
           {"seed", static_cast<double>(rng() & 0xffffffffu)}};
      break;
    case TransformKind::kJpeg:
      p = {{"q", static_cast<double>(UniformInt(rng, 10, 50))}};
      break;
    case TransformKind::kTextOverlay: {
      static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
      const int length = UniformInt(rng, 3, 10);
      for (int i = 0; i < length; ++i) step.text += kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
      p = {{"x", Round(Uniform(rng, 0, 0.5), 2)},
           {"y", Round(Uniform(rng, 0.2, 0.95), 2)},
           {"size", Round(Uniform(rng, 0.08, 0.2), 2)},
           {"r", static_cast<double>(UniformInt(rng, 0, 255))},
           {"g", static_cast<double>(UniformInt(rng, 0, 255))},
           {"b", static_cast<double>(UniformInt(rng, 0, 255))}};
      break;
    }
    case TransformKind::kEmojiOverlay:
      p = {{"x", Round(Uniform(rng, 0.15, 0.85), 2)},
           {"y", Round(Uniform(rng, 0.15, 0.85), 2)},
           {"r", Round(Uniform(rng, 0.1, 0.3), 2)}};
      break;
    case TransformKind::kPad:
      p = {{"top", Round(Uniform(rng, 0.05, 0.3), 2)},
           {"bottom", Round(Uniform(rng, 0.05, 0.3), 2)},
           {"left", Round(Uniform(rng, 0.05, 0.3), 2)},
           {"right", Round(Uniform(rng, 0.05, 0.3), 2)},
           {"v", static_cast<double>(UniformInt(rng, 0, 255))}};
      break;
  }
  return step;
}

std::vector<TransformSpec> DrawQueryTransforms(uint64_t seed, const std::string& reference_id,
                                               int per_ref) {
  std::mt19937_64 rng(ReferenceSeed(seed, reference_id));
  std::vector<int> slots(kSlots);
  std::vector<TransformSpec> specs;
  for (int i = 0; i < per_ref; ++i) {
    if (i % kSlots == 0) {
      for (int s = 0; s < kSlots; ++s) slots[s] = s;
      Shuffle(slots, rng);
    }
    const int slot = slots[i % kSlots];
    std::vector<TransformKind> kinds;
    if (slot < kSlots - 1) {
      kinds = {kAllTransformKinds[slot]};
    } else {
      kinds.assign(std::begin(kAllTransformKinds), std::end(kAllTransformKinds));
      Shuffle(kinds, rng);
      kinds.resize(UniformInt(rng, 2, 3));
      std::stable_partition(kinds.begin(), kinds.end(),
                            [](TransformKind k) { return k != TransformKind::kJpeg; });
    }
    TransformSpec spec;
    for (TransformKind kind : kinds) spec.push_back(DrawTransformStep(kind, rng));
    specs.push_back(std::move(spec));
  }
  return specs;
}

absl::StatusOr<image::Image> ApplyTransforms(const image::Image& image, const TransformSpec& spec) {
  if (image.width <= 0 || image.height <= 0 ||
      image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3) {
    return absl::InvalidArgumentError("image is empty or its rgb size does not match");
  }
  try {
    cv::Mat img = ToBgr(image);
    if (absl::Status s = ApplyAll(spec, spec.size(), img); !s.ok()) return s;
    image::Image out;
    out.width = img.cols;
    out.height = img.rows;
    out.rgb.resize(static_cast<size_t>(img.cols) * img.rows * 3);
    cv::Mat rgb(img.rows, img.cols, CV_8UC3, out.rgb.data());
    cv::cvtColor(img, rgb, cv::COLOR_BGR2RGB);
    return out;
  } catch (const cv::Exception& e) {
    return absl::InternalError(absl::StrCat("OpenCV: ", e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory applying transforms");
  }
}

absl::StatusOr<SimilarSetReport> BuildSimilarSet(const std::string& refs_dir,
                                                 const std::string& out_dir,
                                                 const SimilarSetOptions& options) {
  if (options.per_ref < 1 || options.per_ref > kMaxPerRef) {
    return absl::InvalidArgumentError(
        absl::StrCat("per_ref: expected 1..", kMaxPerRef, ", got ", options.per_ref));
  }
  std::error_code ec;
  if (!fs::is_directory(refs_dir, ec)) {
    return absl::NotFoundError(absl::StrCat("refs_dir ", refs_dir, " is not a directory"));
  }
  SimilarSetReport report;
  const fs::path out_path(out_dir);
  bool previous = false;
  if (absl::Status s = CheckOutDir(out_path, previous); !s.ok()) return s;
  const fs::path out_canonical = fs::weakly_canonical(out_path, ec);
  absl::StatusOr<std::vector<Reference>> refs =
      ListReferences(refs_dir, out_canonical, report.skipped);
  if (!refs.ok()) return refs.status();
  if (refs->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("refs_dir ", refs_dir, " holds no image (.jpg .jpeg .png .webp .bmp)"));
  }
  if (absl::Status s = PrepareOutDir(out_path, previous); !s.ok()) return s;
  if (absl::Status s = WriteManifest(out_path, options, report, false); !s.ok()) return s;

  image::DecodeLimits limits;
  limits.max_bytes = 32 << 20;
  limits.max_side = 8192;
  limits.max_pixels = 40'000'000;
  std::string csv = "query_id,reference_id,transforms\n";
  std::unordered_set<std::string> query_ids;
  for (size_t r = 0; r < refs->size(); ++r) {
    const Reference& ref = (*refs)[r];
    absl::StatusOr<image::Image> decoded;
    absl::StatusOr<std::string> bytes = ReadBounded(ref.path, limits.max_bytes);
    decoded = bytes.ok() ? image::DecodeImage(*bytes, limits) : bytes.status();
    if (!decoded.ok()) {
      report.skipped.push_back({ref.path, std::string(decoded.status().message())});
      if (options.progress) options.progress(r + 1, refs->size());
      continue;
    }
    cv::Mat reference;
    try {
      reference = ToBgr(*decoded);
    } catch (const cv::Exception& e) {
      return absl::InternalError(absl::StrCat("OpenCV: ", e.what()));
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(absl::StrCat(ref.id, ": out of memory"));
    }
    decoded->rgb = {};
    const std::vector<TransformSpec> specs =
        DrawQueryTransforms(options.seed, ref.id, options.per_ref);
    const uint64_t ref_seed = ReferenceSeed(options.seed, ref.id);
    for (size_t i = 0; i < specs.size(); ++i) {
      const TransformSpec& spec = specs[i];
      char query_id[24];
      std::snprintf(query_id, sizeof(query_id), "q%016llx",
                    static_cast<unsigned long long>(SplitMix64(ref_seed + i + 1)));
      if (!query_ids.insert(query_id).second) {
        return absl::InternalError(absl::StrCat("query id ", query_id, " drawn twice"));
      }
      // A last JPEG step is the query file itself, encoded once at its quality.
      const bool jpeg_last = spec.back().kind == TransformKind::kJpeg;
      cv::Mat query = reference.clone();
      if (absl::Status s = ApplyAll(spec, jpeg_last ? spec.size() - 1 : spec.size(), query);
          !s.ok()) {
        return absl::Status(s.code(), absl::StrCat(ref.id, ": ", s.message()));
      }
      std::vector<uchar> encoded;
      try {
        if (jpeg_last) {
          cv::imencode(".jpg", query, encoded,
                       {cv::IMWRITE_JPEG_QUALITY, static_cast<int>(spec.back().Param("q"))});
        } else {
          cv::imencode(".png", query, encoded);
        }
      } catch (const cv::Exception& e) {
        return absl::InternalError(absl::StrCat(ref.id, ": OpenCV: ", e.what()));
      }
      const fs::path file =
          out_path / "queries" / absl::StrCat(query_id, jpeg_last ? ".jpg" : ".png");
      if (absl::Status s = WriteFile(file, encoded.data(), encoded.size()); !s.ok()) return s;
      absl::StrAppend(&csv, query_id, ",", CsvField(ref.id), ",",
                      CsvField(TransformSpecString(spec)), "\n");
      ++report.queries;
    }
    ++report.references;
    if (options.progress) options.progress(r + 1, refs->size());
  }
  if (absl::Status s = WriteFile(out_path / "ground_truth.csv", csv.data(), csv.size()); !s.ok()) {
    return s;
  }
  if (absl::Status s = WriteManifest(out_path, options, report, true); !s.ok()) return s;
  return report;
}

}  // namespace retrace::eval
