// Tests of the hand-crafted-similar query-set builder (core/eval/similar_set.h) on small
// synthetic references drawn here.
#include "core/eval/similar_set.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>
#include <sstream>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace retrace::eval {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::SizeIs;

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Files: every file under `dir`, relative path -> contents.
std::map<std::string, std::string> Files(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) {
      out[fs::relative(entry.path(), dir).generic_string()] = ReadAll(entry.path());
    }
  }
  return out;
}

// Synthetic: a picture with structure (gradient, shapes) so every transform shows.
cv::Mat Synthetic(int width, int height, int variant) {
  cv::Mat img(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      img.at<cv::Vec3b>(y, x) =
          cv::Vec3b(static_cast<uchar>(x * 255 / width), static_cast<uchar>(y * 255 / height),
                    static_cast<uchar>((variant * 60) % 256));
    }
  }
  cv::rectangle(img, cv::Rect(width / 8, height / 6, width / 3, height / 3),
                cv::Scalar(255, 255, 255), cv::FILLED);
  cv::circle(img, cv::Point(width * 2 / 3, height * 2 / 3), height / 5, cv::Scalar(0, 0, 0),
             cv::FILLED);
  return img;
}

image::Image ToImage(const cv::Mat& bgr) {
  image::Image out;
  out.width = bgr.cols;
  out.height = bgr.rows;
  out.rgb.resize(static_cast<size_t>(bgr.cols) * bgr.rows * 3);
  cv::Mat rgb(bgr.rows, bgr.cols, CV_8UC3, out.rgb.data());
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return out;
}

SimilarSetOptions Options(uint64_t seed, int per_ref) {
  SimilarSetOptions options;
  options.seed = seed;
  options.per_ref = per_ref;
  return options;
}

struct GroundTruthRow {
  std::string query_id, reference_id, transforms;
};

// ParseGroundTruth: the rows of ground_truth.csv (the transforms field is quoted).
std::vector<GroundTruthRow> ParseGroundTruth(const std::string& csv) {
  std::vector<std::string> lines = absl::StrSplit(csv, '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.at(0), "query_id,reference_id,transforms");
  std::vector<GroundTruthRow> rows;
  for (size_t i = 1; i < lines.size(); ++i) {
    // Fields: unquoted, or quoted with "" for a quote; the test's ids hold no quote.
    std::vector<std::string> fields;
    const std::string& line = lines[i];
    for (size_t pos = 0; pos <= line.size();) {
      if (pos < line.size() && line[pos] == '"') {
        const size_t close = line.find('"', pos + 1);
        fields.push_back(line.substr(pos + 1, close - pos - 1));
        pos = close + 2;
      } else {
        const size_t comma = std::min(line.find(',', pos), line.size());
        fields.push_back(line.substr(pos, comma - pos));
        pos = comma + 1;
      }
    }
    EXPECT_EQ(fields.size(), 3u) << line;
    fields.resize(3);
    rows.push_back({fields[0], fields[1], fields[2]});
  }
  return rows;
}

class SimilarSetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(refs());
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path refs() const { return root_ / "refs"; }
  fs::path out(const std::string& name = "out") const { return root_ / name; }

  void WriteRef(const std::string& relative, int width, int height, int variant) {
    const fs::path path = refs() / relative;
    fs::create_directories(path.parent_path());
    ASSERT_TRUE(cv::imwrite(path.string(), Synthetic(width, height, variant)));
  }
  void WriteThreeRefs() {
    WriteRef("a,1.png", 96, 64, 1);  // a comma: quoted in the CSV
    WriteRef("photo/b.jpg", 80, 80, 2);
    WriteRef("sketch/c.png", 64, 100, 3);
  }

  fs::path root_;
};

TEST_F(SimilarSetTest, WritesPerRefQueriesAndGroundTruth) {
  WriteThreeRefs();
  size_t progress_calls = 0;
  SimilarSetOptions options = Options(7, 4);
  options.progress = [&](size_t done, size_t total) {
    ++progress_calls;
    EXPECT_EQ(total, 3u);
    EXPECT_EQ(done, progress_calls);
  };
  absl::StatusOr<SimilarSetReport> report = BuildSimilarSet(refs(), out(), options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->references, 3u);
  EXPECT_EQ(report->queries, 12u);
  EXPECT_THAT(report->skipped, SizeIs(0));
  EXPECT_EQ(progress_calls, 3u);

  const std::vector<GroundTruthRow> rows = ParseGroundTruth(ReadAll(out() / "ground_truth.csv"));
  ASSERT_THAT(rows, SizeIs(12));
  std::map<std::string, int> per_ref;
  std::set<std::string> ids;
  for (const GroundTruthRow& row : rows) {
    ++per_ref[row.reference_id];
    ids.insert(row.query_id);
    const std::string last_step = row.transforms.substr(row.transforms.rfind('+') + 1);
    const bool jpeg_last = last_step.rfind("jpeg(", 0) == 0;
    const fs::path file = out() / "queries" / (row.query_id + (jpeg_last ? ".jpg" : ".png"));
    EXPECT_TRUE(fs::exists(file)) << file << " for " << row.transforms;
    EXPECT_FALSE(cv::imread(file.string()).empty()) << file;
  }
  EXPECT_EQ(ids.size(), 12u);
  EXPECT_EQ(per_ref,
            (std::map<std::string, int>{{"a,1.png", 4}, {"photo/b.jpg", 4}, {"sketch/c.png", 4}}));
  EXPECT_EQ(Files(out() / "queries").size(), 12u);
  const std::string manifest = ReadAll(out() / "manifest.json");
  EXPECT_THAT(manifest, HasSubstr("\"seed\": 7"));
  EXPECT_THAT(manifest, HasSubstr("\"per_ref\": 4"));
  EXPECT_THAT(manifest, HasSubstr("\"queries\": 12"));
  EXPECT_THAT(manifest, HasSubstr("\"complete\": true"));
}

TEST_F(SimilarSetTest, SameSeedSameBytesOtherSeedOtherQueries) {
  WriteThreeRefs();
  ASSERT_TRUE(BuildSimilarSet(refs(), out("a"), Options(3, 5)).ok());
  ASSERT_TRUE(BuildSimilarSet(refs(), out("b"), Options(3, 5)).ok());
  ASSERT_TRUE(BuildSimilarSet(refs(), out("c"), Options(4, 5)).ok());
  EXPECT_EQ(Files(out("a")), Files(out("b")));
  EXPECT_NE(ReadAll(out("a") / "ground_truth.csv"), ReadAll(out("c") / "ground_truth.csv"));
  // Rebuilding into a previous build replaces it, identically.
  ASSERT_TRUE(BuildSimilarSet(refs(), out("a"), Options(3, 5)).ok());
  EXPECT_EQ(Files(out("a")), Files(out("b")));
}

TEST_F(SimilarSetTest, AnotherReferenceLeavesExistingQueriesAlone) {
  WriteThreeRefs();
  ASSERT_TRUE(BuildSimilarSet(refs(), out("before"), Options(11, 3)).ok());
  WriteRef("0-first.png", 70, 50, 4);  // sorts before the others
  absl::StatusOr<SimilarSetReport> report = BuildSimilarSet(refs(), out("after"), Options(11, 3));
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->queries, 12u);
  const auto before = Files(out("before") / "queries");
  const auto after = Files(out("after") / "queries");
  ASSERT_EQ(before.size(), 9u);
  for (const auto& [name, bytes] : before) {
    ASSERT_EQ(after.count(name), 1u) << name;
    EXPECT_EQ(after.at(name), bytes) << name;
  }
  std::set<std::string> after_rows;
  for (const GroundTruthRow& row : ParseGroundTruth(ReadAll(out("after") / "ground_truth.csv"))) {
    after_rows.insert(row.query_id + " " + row.reference_id + " " + row.transforms);
  }
  for (const GroundTruthRow& row : ParseGroundTruth(ReadAll(out("before") / "ground_truth.csv"))) {
    EXPECT_EQ(after_rows.count(row.query_id + " " + row.reference_id + " " + row.transforms), 1u)
        << row.query_id;
  }
}

TEST_F(SimilarSetTest, EveryKindChangesTheImageAsRecorded) {
  const image::Image input = ToImage(Synthetic(120, 90, 5));
  std::mt19937_64 rng(42);
  for (int trial = 0; trial < 5; ++trial) {
    for (TransformKind kind : kAllTransformKinds) {
      const TransformStep step = DrawTransformStep(kind, rng);
      SCOPED_TRACE(TransformSpecString({step}));
      absl::StatusOr<image::Image> out = ApplyTransforms(input, {step});
      ASSERT_TRUE(out.ok()) << out.status();
      EXPECT_TRUE(out->width != input.width || out->height != input.height ||
                  out->rgb != input.rgb);
      switch (kind) {
        case TransformKind::kCrop:
          EXPECT_EQ(out->width, std::lround(step.Param("w") * 120));
          EXPECT_EQ(out->height, std::lround(step.Param("h") * 90));
          break;
        case TransformKind::kScale:
          EXPECT_EQ(out->width, std::lround(step.Param("s") * 120));
          EXPECT_EQ(out->height, std::lround(step.Param("s") * 90));
          break;
        case TransformKind::kPad:
          EXPECT_GT(out->width, 120);
          EXPECT_GT(out->height, 90);
          EXPECT_EQ(out->width, 120 + std::lround(step.Param("left") * 120) +
                                    std::lround(step.Param("right") * 120));
          break;
        case TransformKind::kRotate:
          if (step.Param("deg") == 90 || step.Param("deg") == 270) {
            EXPECT_EQ(out->width, 90);
            EXPECT_EQ(out->height, 120);
          } else {
            EXPECT_EQ(out->width, 120);
            EXPECT_EQ(out->height, 90);
          }
          break;
        case TransformKind::kJpeg:
          EXPECT_GE(step.Param("q"), 10);
          EXPECT_LE(step.Param("q"), 50);
          EXPECT_THAT(TransformSpecString({step}), HasSubstr("jpeg(q="));
          [[fallthrough]];
        default:  // flip, colour, blur, noise, overlays keep the size
          EXPECT_EQ(out->width, 120);
          EXPECT_EQ(out->height, 90);
      }
    }
  }
}

TEST_F(SimilarSetTest, DrawsEveryKindAndChainsWithJpegLast) {
  const std::vector<TransformSpec> specs = DrawQueryTransforms(1, "x/y.png", 12);
  ASSERT_THAT(specs, SizeIs(12));
  std::set<TransformKind> singles;
  int chains = 0;
  for (const TransformSpec& spec : specs) {
    if (spec.size() == 1) {
      singles.insert(spec[0].kind);
      continue;
    }
    ++chains;
    EXPECT_GE(spec.size(), 2u);
    EXPECT_LE(spec.size(), 3u);
    for (size_t i = 0; i + 1 < spec.size(); ++i) EXPECT_NE(spec[i].kind, TransformKind::kJpeg);
  }
  EXPECT_EQ(singles.size(), 11u);
  EXPECT_EQ(chains, 1);
  EXPECT_EQ(TransformSpecString(DrawQueryTransforms(1, "x/y.png", 20)[3]),
            TransformSpecString(specs[3]));
  TransformStep crop{TransformKind::kCrop, {{"x", 0.12}, {"y", 0.05}, {"w", 0.7}, {"h", 0.7}}, ""};
  TransformStep jpeg{TransformKind::kJpeg, {{"q", 35}}, ""};
  EXPECT_EQ(TransformSpecString({crop, jpeg}), "crop(x=0.12,y=0.05,w=0.7,h=0.7)+jpeg(q=35)");
  TransformStep noise{TransformKind::kNoise, {{"std", 12.5}, {"seed", 3735928559.0}}, ""};
  EXPECT_EQ(TransformSpecString({noise}), "noise(std=12.5,seed=3735928559)");
  TransformStep text{TransformKind::kTextOverlay, {{"x", 0.25}, {"size", 0.1}}, "AB7"};
  EXPECT_EQ(TransformSpecString({text}), "text_overlay(text=AB7,x=0.25,size=0.1)");
}

TEST_F(SimilarSetTest, CorruptReferenceIsSkippedAndReported) {
  WriteRef("good.png", 64, 64, 1);
  std::ofstream(refs() / "bad.jpg") << "not a jpeg at all";
  std::ofstream(refs() / "notes.txt") << "ignored";
  absl::StatusOr<SimilarSetReport> report = BuildSimilarSet(refs(), out(), Options(1, 2));
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->references, 1u);
  EXPECT_EQ(report->queries, 2u);
  ASSERT_THAT(report->skipped, SizeIs(1));
  EXPECT_THAT(report->skipped[0].path, HasSubstr("bad.jpg"));
  EXPECT_FALSE(report->skipped[0].reason.empty());
  EXPECT_THAT(ParseGroundTruth(ReadAll(out() / "ground_truth.csv")), SizeIs(2));
}

TEST_F(SimilarSetTest, OversizedReferenceIsSkippedBeforeDecoding) {
  WriteRef("good.png", 64, 64, 1);
  ASSERT_TRUE(cv::imwrite((refs() / "wide.png").string(), cv::Mat(4, 9000, CV_8UC3)));
  absl::StatusOr<SimilarSetReport> report = BuildSimilarSet(refs(), out(), Options(1, 1));
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->queries, 1u);
  ASSERT_THAT(report->skipped, SizeIs(1));
  EXPECT_THAT(report->skipped[0].path, HasSubstr("wide.png"));
  EXPECT_THAT(report->skipped[0].reason, HasSubstr("9000"));
}

TEST_F(SimilarSetTest, RejectsBadArguments) {
  WriteThreeRefs();
  for (int per_ref : {0, 21, -1}) {
    absl::StatusOr<SimilarSetReport> report = BuildSimilarSet(refs(), out(), Options(1, per_ref));
    ASSERT_FALSE(report.ok());
    EXPECT_EQ(report.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(report.status().message(), HasSubstr("per_ref"));
  }
  EXPECT_FALSE(fs::exists(out()));

  EXPECT_EQ(BuildSimilarSet((root_ / "missing").string(), out(), {}).status().code(),
            absl::StatusCode::kNotFound);
  fs::create_directories(root_ / "empty");
  EXPECT_EQ(BuildSimilarSet((root_ / "empty").string(), out(), {}).status().code(),
            absl::StatusCode::kInvalidArgument);

  // A non-empty folder that is no previous build is refused and left as it was.
  fs::create_directories(out("foreign"));
  std::ofstream(out("foreign") / "thesis.tex") << "precious";
  absl::StatusOr<SimilarSetReport> report = BuildSimilarSet(refs(), out("foreign"), {});
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(report.status().message(), HasSubstr("not empty"));
  EXPECT_EQ(ReadAll(out("foreign") / "thesis.tex"), "precious");
  EXPECT_FALSE(fs::exists(out("foreign") / "queries"));
  // Nor is a folder of the references themselves.
  report = BuildSimilarSet(refs(), refs() / "photo", Options(1, 1));
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.status().message(), HasSubstr("not empty"));
}

TEST_F(SimilarSetTest, OutDirInsideRefsIsNotReadAsReferences) {
  WriteThreeRefs();
  const fs::path inside = refs() / "similar";
  ASSERT_TRUE(BuildSimilarSet(refs(), inside, Options(2, 2)).ok());
  absl::StatusOr<SimilarSetReport> again = BuildSimilarSet(refs(), inside, Options(2, 2));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->references, 3u);
  EXPECT_EQ(again->queries, 6u);
}

}  // namespace
}  // namespace retrace::eval
