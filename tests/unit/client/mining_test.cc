// client/mining without a server: which hits may be an item's nearest, the id sources, and the
// output files — their format, refusing to overwrite, and resuming (checked ids, cut tails).
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "client/mining/id_source.h"
#include "client/mining/pair_miner.h"
#include "client/mining/pairs_files.h"
#include "gtest/gtest.h"

namespace retrace::mining {
namespace {

namespace fs = std::filesystem;

// FreshDir: an empty folder for one test under gtest's temporary folder.
std::string FreshDir(const std::string& name) {
  const fs::path dir =
      fs::path(::testing::TempDir()) /
      absl::StrCat("retrace-", name, "-", ::getpid(), "-",
                   ::testing::UnitTest::GetInstance()->random_seed(), "-",
                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> Ids(const std::vector<Hit>& hits) {
  std::vector<std::string> ids;
  for (const Hit& h : hits) ids.push_back(h.id);
  return ids;
}

TEST(NearCandidatesTest, LeavesOutItselfAndOptionallyIdenticalCaptions) {
  const std::vector<Hit> hits = {{"a", "a dog", 1.0f},
                                 {"b", "a dog", 1.0f},
                                 {"c", "a dog on grass", 0.9f},
                                 {"d", "a dog in snow", 0.8f}};
  EXPECT_EQ(Ids(NearCandidates("a", "a dog", hits, false)), std::vector<std::string>{"b"});
  EXPECT_EQ(Ids(NearCandidates("a", "a dog", hits, true)), std::vector<std::string>{"c"});
  EXPECT_EQ(Ids(NearCandidates("c", "a dog on grass", hits, false)),
            (std::vector<std::string>{"a", "b"}));  // a tie: both are re-scored
  EXPECT_TRUE(NearCandidates("a", "a dog", {{"a", "a dog", 1.0f}}, false).empty());
  EXPECT_TRUE(
      NearCandidates("a", "a dog", {{"a", "a dog", 1.f}, {"b", "a dog", 1.f}}, true).empty());
}

TEST(NearCandidatesTest, KeepsEveryHitWithinTheTieMarginOfTheBest) {
  const std::vector<Hit> hits = {
      {"x", "x", 0.7f}, {"y", "y", 0.7f - kNearTie / 2}, {"z", "z", 0.7f - 2 * kNearTie}};
  EXPECT_EQ(Ids(NearCandidates("q", "q", hits, false)), (std::vector<std::string>{"x", "y"}));
}

class PairsFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir("mining");
    pairs_ = dir_ + "/pairs.jsonl";
    emb_ = dir_ + "/emb.bin";
  }

  static MinedPair Pair(const std::string& id, float x) {
    MinedPair p;
    p.id = id;
    p.caption = "caption of " + id;
    p.nearest = "n-" + id;
    p.nearest_caption = "caption of n-" + id;
    p.similarity = 0.1234567;
    p.embedding = {x, -x, 0.5f};
    return p;
  }
  static MinedPair Missing(const std::string& id) {
    MinedPair p;
    p.id = id;
    p.error = "NOT_FOUND: not stored";
    return p;
  }
  // WriteAll writes the five items of this test in one run (ids a..e, c missing).
  void WriteAll(const std::string& pairs, const std::string& emb) {
    auto w = PairsWriter::Create(pairs, emb);
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE((*w)->Write({Pair("a", 1), Pair("b", 2)}).ok());
    ASSERT_TRUE((*w)->Write({Missing("c"), Pair("d", 4), Pair("e", 5)}).ok());
    EXPECT_EQ((*w)->done(), 5);
  }
  std::unique_ptr<IdSource> AllIds() { return IdList({"a", "b", "c", "d", "e"}, "the test ids"); }

  std::string dir_, pairs_, emb_;
};

TEST_F(PairsFilesTest, LinesAndRecordsHaveTheDocumentedLayout) {
  WriteAll(pairs_, emb_);
  std::istringstream lines(ReadFile(pairs_));
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(
      line,
      R"({"id":"a","caption":"caption of a","nearest":"n-a","nearest_caption":"caption of n-a","similarity":0.123457})");
  std::getline(lines, line);
  std::getline(lines, line);
  EXPECT_EQ(line, R"({"id":"c","error":"NOT_FOUND: not stored"})");
  MinedPair alone = Pair("z", 1);
  alone.nearest.reset();
  EXPECT_EQ(
      PairLine(alone),
      R"({"id":"z","caption":"caption of z","nearest":null,"nearest_caption":null,"similarity":null})");

  // Header, then one record per line without an error: 4 records of (4 + 1 + 3 * 4) bytes.
  const std::string bytes = ReadFile(emb_);
  ASSERT_EQ(bytes.size(), 12u + 4 * 17u);
  EXPECT_EQ(bytes.substr(0, 8), "RTCEMB1\n");
  uint32_t dim, id_bytes;
  float first;
  memcpy(&dim, bytes.data() + 8, 4);
  memcpy(&id_bytes, bytes.data() + 12, 4);
  memcpy(&first, bytes.data() + 17, 4);
  EXPECT_EQ(dim, 3u);
  EXPECT_EQ(id_bytes, 1u);
  EXPECT_EQ(bytes[16], 'a');
  EXPECT_EQ(first, 1.0f);
  EXPECT_EQ(bytes[12 + 3 * 17 + 4], 'e');  // c has no record
}

TEST_F(PairsFilesTest, CreateNeverOverwritesAnEarlierRun) {
  WriteAll(pairs_, emb_);
  auto again = PairsWriter::Create(pairs_, "");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(again.status().message().find("already exists"), std::string::npos);
  auto emb_only = PairsWriter::Create(dir_ + "/new.jsonl", emb_);
  EXPECT_EQ(emb_only.status().code(), absl::StatusCode::kFailedPrecondition);
}

// Interrupted at every byte of the pairs file (with the embeddings file one batch ahead, or
// cut at any byte of the matching record), a resumed run ends with the uninterrupted files.
TEST_F(PairsFilesTest, ResumeAfterAnInterruptionAnywhereGivesTheUninterruptedFiles) {
  WriteAll(pairs_, emb_);
  const std::string want_pairs = ReadFile(pairs_);
  const std::string want_emb = ReadFile(emb_);
  const std::string run = dir_ + "/run.jsonl", run_emb = dir_ + "/run.bin";
  const std::vector<MinedPair> all = {Pair("a", 1), Pair("b", 2), Missing("c"), Pair("d", 4),
                                      Pair("e", 5)};
  for (size_t cut = 0; cut <= want_pairs.size(); cut += 7) {
    std::ofstream(run, std::ios::binary | std::ios::trunc) << want_pairs.substr(0, cut);
    std::ofstream(run_emb, std::ios::binary | std::ios::trunc) << want_emb;  // ahead
    std::unique_ptr<IdSource> ids = AllIds();
    auto w = PairsWriter::Resume(run, run_emb, *ids);
    ASSERT_TRUE(w.ok()) << "cut " << cut << ": " << w.status();
    const int64_t done = (*w)->done();
    ASSERT_LE(done, 5);
    ASSERT_TRUE((*w)->Write(std::vector<MinedPair>(all.begin() + done, all.end())).ok());
    EXPECT_EQ(ReadFile(run), want_pairs) << "cut " << cut;
    EXPECT_EQ(ReadFile(run_emb), want_emb) << "cut " << cut;
    // The source was consumed up to where the run goes on.
    auto next = ids->Next();
    ASSERT_TRUE(next.ok());
    if (done < 5) {
      EXPECT_EQ(**next, all[done].id);
    } else {
      EXPECT_FALSE(next->has_value());
    }
  }
}

TEST_F(PairsFilesTest, ResumeRefusesOtherIdsAndMissingOrShortFiles) {
  WriteAll(pairs_, emb_);
  std::unique_ptr<IdSource> other = IdList({"a", "x"}, "other.txt");
  auto w = PairsWriter::Resume(pairs_, emb_, *other);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(w.status().message().find(":2 is for 'b', but id 2 of other.txt is 'x'"),
            std::string::npos)
      << w.status();

  std::unique_ptr<IdSource> fewer = IdList({"a", "b"}, "fewer.txt");
  w = PairsWriter::Resume(pairs_, emb_, *fewer);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kFailedPrecondition) << w.status();

  auto ids = AllIds();
  w = PairsWriter::Resume(dir_ + "/none.jsonl", "", *ids);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kNotFound);

  ids = AllIds();
  w = PairsWriter::Resume(pairs_, dir_ + "/none.bin", *ids);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kFailedPrecondition);

  fs::resize_file(emb_, 12 + 17 + 5);  // only a's record is whole
  ids = AllIds();
  w = PairsWriter::Resume(pairs_, emb_, *ids);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(w.status().message().find("holds 1 complete records"), std::string::npos) << w.status();

  std::ofstream(pairs_, std::ios::app) << "not json\n";
  ids = AllIds();
  w = PairsWriter::Resume(pairs_, "", *ids);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(w.status().message().find("pairs.jsonl:6"), std::string::npos) << w.status();
}

TEST_F(PairsFilesTest, WriteRefusesAnEmbeddingOfAnotherSize) {
  auto w = PairsWriter::Create(pairs_, emb_);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write({Pair("a", 1)}).ok());
  MinedPair wide = Pair("b", 2);
  wide.embedding.push_back(0);
  EXPECT_EQ((*w)->Write({wide}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(IdSourceTest, FileIdsSkipEmptyLinesAndCarriageReturns) {
  const std::string path = FreshDir("ids") + "/ids.txt";
  std::ofstream(path) << "a b.jpg\r\n\nc/d.png\n";
  auto ids = OpenIdFile(path);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ((*ids)->total(), 2);
  EXPECT_EQ(**(*ids)->Next(), "a b.jpg");
  EXPECT_EQ(**(*ids)->Next(), "c/d.png");
  EXPECT_FALSE((*ids)->Next()->has_value());

  EXPECT_EQ(OpenIdFile(path + ".missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(OpenIdFile(FreshDir("ids")).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace retrace::mining
