// The `retrace` CLI against the real server: the README tour — create a collection, index a
// folder (ids are paths relative to it), search by image and by text (table and --json),
// describe, delete — with the exit codes scripts rely on.
#include <sys/wait.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/server_process.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using testing::FixtureDir;

using testing::CliResult;

class CliE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(FixtureDir() + "/oracle/clip/model.pt")) {
      GTEST_SKIP() << "oracle models not found in " << FixtureDir();
    }
    server_ = std::make_unique<testing::ServerProcess>(
        testing::ServerOptions{FixtureDir() + "/oracle", testing::NewTempDir("cli"), {}});
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
    scratch_ = testing::NewTempDir("cli-out");
  }

  CliResult Run(const std::string& args) { return RunOn(server_->address(), args); }
  CliResult RunOn(const std::string& servers, const std::string& args) {
    return testing::RunCli(servers, args, scratch_);
  }

  std::unique_ptr<testing::ServerProcess> server_;
  std::string scratch_;
};

TEST_F(CliE2eTest, TourOfTheReadme) {
  const std::string images = FixtureDir() + "/images";
  CliResult r = Run("health");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");

  r = Run("collections create shapes --shards 2");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  r = Run("index --collection shapes " + images);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out + r.err, "96")) << r.out << r.err;

  r = Run("collections describe shapes");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "96")) << r.out;

  r = Run("index --collection shapes " + images);  // again: nothing changed, nothing written
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "96 of them were already stored")) << r.out;

  const std::string query = images + "/sketch/guitar";
  const std::string file = fs::directory_iterator(query)->path().string();
  r = Run("search --collection shapes --image " + file + " --top-k 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Ids are paths relative to the folder given, and the oracle puts guitars first.
  EXPECT_TRUE(absl::StrContains(r.out, "/guitar/")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "a picture of a guitar")) << r.out;
  EXPECT_FALSE(absl::StrContains(r.out, "/horse/")) << r.out;

  r = Run("--json search --collection shapes --text \"a photo of a cat\" --top-k 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "\"hits\"")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "/cat/")) << r.out;

  r = Run("get --collection shapes photo/cat/cat_0.png");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "a picture of a cat")) << r.out;

  r = Run("delete --collection shapes photo/cat/cat_0.png nothing/here.png");
  EXPECT_EQ(r.exit_code, 1) << "an absent id must fail the command: " << r.out << r.err;
  r = Run("collections describe shapes");
  EXPECT_TRUE(absl::StrContains(r.out, "95")) << r.out;
  r = Run("get --collection shapes photo/cat/cat_0.png");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "NOT_FOUND")) << r.out;

  r = Run("search --collection nope --text dog");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.err, "NOT_FOUND")) << r.err;

  r = Run("search --collection shapes");
  EXPECT_EQ(r.exit_code, 2) << "missing query is a usage error: " << r.err;
}

// Positions: index and delete print where they wrote; search --after waits for it (and gives up
// at --timeout); --server spreads calls over a list (one of them down); cluster status.
TEST_F(CliE2eTest, PositionsReplicaListsAndClusterStatus) {
  ASSERT_EQ(Run("collections create shapes").exit_code, 0);
  CliResult r = Run("index --collection shapes " + FixtureDir() + "/images/photo/cat");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const size_t at = r.out.find("stored at position ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const int64_t position = std::stoll(r.out.substr(at + 19));
  ASSERT_GT(position, 0);
  EXPECT_TRUE(absl::StrContains(r.out, absl::StrCat("search --after ", position))) << r.out;

  r = Run(absl::StrCat("search --collection shapes --text cat --after ", position));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "a picture of a cat")) << r.out;
  r = Run(absl::StrCat("--timeout 1 search --collection shapes --text cat --after ",
                       position + 1000));
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "DEADLINE_EXCEEDED")) << r.err;
  EXPECT_EQ(Run("search --collection shapes --text cat --after -3").exit_code, 2);

  r = Run("delete --collection shapes photo_cat_0.png cat_0.png");
  EXPECT_TRUE(absl::StrContains(r.out, "position ")) << r.out;

  // Two addresses, the first with nothing listening: calls go to the one that answers.
  const std::string dead = absl::StrCat("127.0.0.1:", testing::FreePort());
  for (int i = 0; i < 3; ++i) {
    r = RunOn(absl::StrCat(dead, ",", server_->address()), "collections list");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(absl::StrContains(r.out, "shapes")) << r.out;
  }

  r = Run("cluster status");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "store sqlite ")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "shapes")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "yes")) << r.out;  // live
  r = Run("--json cluster status");
  EXPECT_TRUE(absl::StrContains(r.out, "\"replicas\"")) << r.out;
  EXPECT_EQ(Run("cluster").exit_code, 2);
}

TEST_F(CliE2eTest, ProvenanceAndHybridSearchShowTheirParts) {
  const std::string photos = FixtureDir() + "/images/photo";
  ASSERT_EQ(Run("collections create photos --image-index HNSW16").exit_code, 0);
  CliResult r = Run("collections describe photos");
  EXPECT_TRUE(absl::StrContains(r.out, "HNSW16")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "image_dim")) << r.out;
  ASSERT_EQ(Run("index --collection photos " + photos).exit_code, 0);

  const std::string query = photos + "/horse/horse_0.png";
  r = Run("search --collection photos --mode provenance --image " + query + " --top-k 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "query caption: a picture of a horse")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "P'")) << r.out;
  // The exact copy is first, with both ranks 0 (its caption and image both fit the query).
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n');
  ASSERT_GE(lines.size(), 3u) << r.out;
  std::vector<std::string> first = absl::StrSplit(lines[2], ' ', absl::SkipEmpty());
  ASSERT_GE(first.size(), 6u) << r.out;  // rank score base P P' id caption...
  EXPECT_EQ(first[2], "1.0000") << r.out;
  EXPECT_EQ(first[3], "0") << r.out;
  EXPECT_EQ(first[4], "0") << r.out;
  EXPECT_EQ(first[5], "horse/horse_0.png") << r.out;

  r = Run("search --collection photos --mode provenance --no-rerank --caption \"a cat\" "
          "--candidates 5 --image " + query);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  lines = absl::StrSplit(r.out, '\n');
  ASSERT_GE(lines.size(), 3u) << r.out;
  first = absl::StrSplit(lines[2], ' ', absl::SkipEmpty());
  ASSERT_GE(first.size(), 5u) << r.out;
  EXPECT_EQ(first[3], "-") << "ranks are not computed: " << r.out;
  EXPECT_EQ(first[4], "-") << r.out;

  r = Run("--json search --collection photos --mode hybrid --rrf-k 5 --text \"a horse\"");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "\"caption_match_rank\"")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "\"provenance_rank\"")) << r.out;

  r = Run("search --collection photos --mode provenance --beta -1 --image " + query);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(absl::StrContains(r.err, "provenance.beta")) << r.err;
  r = Run("search --collection photos --w1 0.5 --image " + query);
  EXPECT_EQ(r.exit_code, 2) << "re-ranking options need --mode provenance or hybrid";
  r = Run("search --collection photos --mode provenance --rrf-k 3 --image " + query);
  EXPECT_EQ(r.exit_code, 2) << "--rrf-k needs --mode hybrid";
  r = Run("search --collection photos --mode provenance --candidates 100000 --image " + query);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "provenance.candidates")) << r.err;
}

// Lexical search: --mode caption-text ranks by the captions' words (the oracle captioner names
// each photo's class); --lexical adds HYBRID's third ranking and its column.
TEST_F(CliE2eTest, CaptionTextSearchAndHybridLexical) {
  ASSERT_EQ(Run("collections create photos").exit_code, 0);
  ASSERT_EQ(Run("index --collection photos " + FixtureDir() + "/images/photo").exit_code, 0);
  CliResult r = Run("search --collection photos --mode caption-text --text \"Horse*\" --top-k 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << r.out;  // the header, three hits
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> row = absl::StrSplit(lines[i], ' ', absl::SkipEmpty());
    ASSERT_GE(row.size(), 4u) << r.out;  // rank score id caption...
    EXPECT_TRUE(absl::StartsWith(row[2], "horse/")) << r.out;
  }

  r = Run("search --collection photos --mode hybrid --lexical --text \"a horse\" --top-k 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "lexical-rank")) << r.out;

  EXPECT_EQ(Run("search --collection photos --lexical --text horse").exit_code, 2)
      << "--lexical needs --mode hybrid";
  r = Run("search --collection photos --mode caption-text --image " + FixtureDir() +
          "/images/photo/horse/horse_0.png");
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(absl::StrContains(r.err, "CAPTION_TEXT")) << r.err;
}

TEST_F(CliE2eTest, EvalRunsBothProtocolsAndWritesTheirFiles) {
  const std::string images = FixtureDir() + "/images";
  const std::string out = scratch_ + "/cm";
  CliResult r = Run("eval cm --data " + images + " --domains photo,sketch --k 1,3 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "| P@1 | 100.0 | 100.0 | 100.0 |")) << r.out;  // oracle
  for (const char* file : {"results.md", "results.json", "report.html",
                           "rankings/photo-sketch.jsonl", "rankings/sketch-photo.jsonl"}) {
    EXPECT_TRUE(fs::exists(out + "/" + file)) << file;
  }

  // A query set built from the photos, then the provenance protocol on it.
  const std::string similar = scratch_ + "/similar";
  r = Run("eval build-similar --refs " + images + "/photo --out " + similar +
          " --seed 7 --per-ref 2");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(fs::exists(similar + "/ground_truth.csv"));
  r = Run("eval provenance --data " + similar + " --refs " + images + "/photo --k 1,24 --out " +
          scratch_ + "/provenance");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "| concatenated |")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "| reranked |")) << r.out;

  r = Run("eval cm --data " + images + " --pairs photo-nowhere --out " + out);
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(absl::StrContains(r.err, "nowhere")) << r.err;
  r = Run("eval provenance --data " + similar);
  EXPECT_EQ(r.exit_code, 2) << "--refs is required";
}

TEST_F(CliE2eTest, IndexReportsFailedItemsAndStoresTheRest) {
  const std::string folder = testing::NewTempDir("cli-mixed");
  fs::copy_file(FixtureDir() + "/images/photo/dog/dog_0.png", folder + "/good.png");
  std::ofstream(folder + "/bad.jpg") << "not really a jpeg";
  ASSERT_EQ(Run("collections create mixed").exit_code, 0);
  CliResult r = Run("index --collection mixed " + folder);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out + r.err, "bad.jpg")) << r.out << r.err;
  r = Run("collections describe mixed");
  EXPECT_TRUE(absl::StrContains(r.out, "1")) << r.out;

  testing::ServerProcess* s = server_.get();
  s->Stop();
  r = Run("collections list");
  EXPECT_EQ(r.exit_code, 3) << "an unreachable server exits 3: " << r.err;
}

TEST_F(CliE2eTest, ItemsWithAttributesGoInAndComeBackOutThroughExport) {
  ASSERT_EQ(Run("collections create corpus").exit_code, 0);
  // A corpus file: relative paths, captions on some lines, attributes on all, a unicode id.
  const std::string images = FixtureDir() + "/images";
  const std::string dir = testing::NewTempDir("items");
  fs::create_directories(dir + "/img");
  fs::copy_file(images + "/photo/dog/dog_0.png", dir + "/img/dog.png");
  std::ofstream(dir + "/corpus.jsonl")
      << R"({"id": "dog", "path": "img/dog.png", "caption": "a dog", "attributes": {"license": "cc-by", "uri": "https://example.org/dog"}})" << "\n"
      << "\n"
      << R"({"id": "chat noir \u00e9", "path": ")" << images << R"(/sketch/cat/cat_0.png", "attributes": {"license": "cc0"}})" << "\n";
  CliResult r = Run("index --collection corpus --attr source=museum --attr license=ignored --items " +
                    dir + "/corpus.jsonl");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "indexed 2 of 2")) << r.out;

  r = Run("export --collection corpus --page-size 1 --out " + scratch_ + "/export.jsonl");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "exported 2 items")) << r.out;
  std::ifstream in(scratch_ + "/export.jsonl");
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 2u);
  // Id order (bytewise): "chat noir é" < "dog".
  EXPECT_EQ(lines[0]["id"], "chat noir \u00e9");
  EXPECT_EQ(lines[1]["id"], "dog");
  EXPECT_EQ(lines[1]["caption"], "a dog");  // given, not the captioner's
  EXPECT_FALSE(lines[0]["caption"].get<std::string>().empty());  // the captioner's
  // --attr applies to every item; an item's own value wins.
  EXPECT_EQ(lines[1]["attributes"], (nlohmann::json{{"license", "cc-by"},
                                                    {"source", "museum"},
                                                    {"uri", "https://example.org/dog"}}));
  EXPECT_EQ(lines[0]["attributes"], (nlohmann::json{{"license", "cc0"}, {"source", "museum"}}));
  EXPECT_GT(lines[0]["created_ms"].get<int64_t>(), 1'700'000'000'000);
  EXPECT_GE(lines[0]["updated_ms"].get<int64_t>(), lines[0]["created_ms"].get<int64_t>());

  // The export, with paths added, indexes into another collection as the same items.
  ASSERT_EQ(Run("collections create copy").exit_code, 0);
  {
    std::ofstream again(dir + "/again.jsonl");
    lines[0]["path"] = images + "/sketch/cat/cat_0.png";
    lines[1]["path"] = "img/dog.png";
    for (const auto& line : lines) again << line.dump() << "\n";
  }
  r = Run("index --collection copy --items " + dir + "/again.jsonl");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = Run("export --collection copy");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> copied = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(copied.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const nlohmann::json line = nlohmann::json::parse(copied[i]);
    EXPECT_EQ(line["id"], lines[i]["id"]);
    EXPECT_EQ(line["caption"], lines[i]["caption"]);
    EXPECT_EQ(line["attributes"], lines[i]["attributes"]);
  }

  // Mistakes name the file, the line and the field, and nothing is sent.
  std::ofstream(dir + "/bad.jsonl") << R"({"id": "x", "path": "img/dog.png"})" << "\n"
                                    << R"({"id": "y", "path": 7})" << "\n";
  r = Run("index --collection corpus --items " + dir + "/bad.jsonl");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.err, "bad.jsonl:2: path")) << r.err;
  r = Run("index --collection corpus --attr nokey " + images);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "--attr: expected KEY=VALUE, got 'nokey'")) << r.err;
}

TEST_F(CliE2eTest, ExportAndDeleteByFilterThroughTheServer) {
  ASSERT_EQ(Run("collections create corpus").exit_code, 0);
  // Photos under one licence, sketches under another.
  const std::string corpus = scratch_ + "/corpus.jsonl";
  {
    std::ofstream lines(corpus);
    for (const auto& file : fs::recursive_directory_iterator(FixtureDir() + "/images")) {
      if (!file.is_regular_file()) continue;
      const std::string domain = file.path().parent_path().parent_path().filename();
      if (domain != "photo" && domain != "sketch") continue;
      lines << nlohmann::json{{"id", fs::relative(file.path(), FixtureDir() + "/images")},
                              {"path", file.path()},
                              {"attributes", {{"license", domain == "photo" ? "cc0" : "cc-by"}}}}
                   .dump()
            << "\n";
    }
  }
  CliResult indexed = Run("index --collection corpus --items " + corpus);
  ASSERT_EQ(indexed.exit_code, 0) << indexed.out << indexed.err;
  CliResult all = Run("export --collection corpus");
  ASSERT_EQ(all.exit_code, 0) << all.err;
  const std::vector<std::string> every = absl::StrSplit(all.out, '\n', absl::SkipEmpty());
  int sketches = 0;
  for (const std::string& line : every) {
    if (nlohmann::json::parse(line)["attributes"]["license"] == "cc-by") ++sketches;
  }
  ASSERT_GT(sketches, 0);
  ASSERT_LT(sketches, static_cast<int>(every.size()));

  // export --filter gives exactly the matching items, over pages of one.
  CliResult r = Run("export --collection corpus --page-size 1 --filter 'license = \"cc-by\" and "
                    "@created >= \"2020-01-01\"'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> exported = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  EXPECT_EQ(static_cast<int>(exported.size()), sketches);
  for (const std::string& line : exported) {
    EXPECT_EQ(nlohmann::json::parse(line)["attributes"]["license"], "cc-by") << line;
  }
  r = Run("export --collection corpus --filter '@created < \"2020-01-01\"'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;

  // delete --filter --dry-run counts; delete --filter deletes exactly those.
  r = Run("delete --collection corpus --filter 'license = \"cc-by\"' --dry-run");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, absl::StrCat(sketches, " items match; nothing deleted")))
      << r.out;
  r = Run("delete --collection corpus --filter 'license = \"cc-by\"'");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, absl::StrCat(sketches, " items matched, ", sketches,
                                                    " deleted")))
      << r.out;
  r = Run("export --collection corpus");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> left = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  EXPECT_EQ(left.size(), every.size() - sketches);
  for (const std::string& line : left) {
    EXPECT_EQ(nlohmann::json::parse(line)["attributes"]["license"], "cc0") << line;
  }

  // Mistakes: a bad expression points at its token before any call; ids and a filter together.
  r = Run("delete --collection corpus --filter 'license = '");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "--filter: unexpected end")) << r.err;
  r = Run("delete --collection corpus --filter 'a = 1' some-id");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "give IDs or --filter, not both")) << r.err;
  r = Run("delete --collection corpus some-id --dry-run");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "--dry-run goes with --filter")) << r.err;
  // The server's own checks, through the API: both ids and a filter, a filter over its bounds.
  auto stub = server_->NewStub();
  v1::DeleteRequest both;
  both.set_collection("corpus");
  both.add_ids("x");
  both.mutable_filter()->mutable_condition()->set_attribute("a");
  both.mutable_filter()->mutable_condition()->set_exists(true);
  v1::DeleteResponse unused;
  {
    grpc::ClientContext context;
    grpc::Status status = stub->Delete(&context, both, &unused);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_TRUE(absl::StrContains(status.error_message(), "ids: give ids or a filter"))
        << status.error_message();
  }
  v1::ListRequest list;
  list.set_collection("corpus");
  v1::Filter* deep = list.mutable_filter();
  for (int i = 0; i < 12; ++i) deep = deep->mutable_negate();
  deep->mutable_time()->set_field(v1::FilterTime::CREATED);
  deep->mutable_time()->mutable_range()->set_gt(0);
  v1::ListResponse page;
  {
    grpc::ClientContext context;
    grpc::Status status = stub->List(&context, list, &page);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_TRUE(absl::StrContains(status.error_message(), "nested deeper than"))
        << status.error_message();
  }
}

TEST_F(CliE2eTest, ListingPagesGiveEveryItemOnceWhileOthersWriteAndDelete) {
  auto stub = server_->NewStub();
  ASSERT_EQ(Run("collections create busy").exit_code, 0);
  const std::string png = testing::ReadFileBytes(FixtureDir() + "/images/photo/car/car_0.png");
  auto index = [&](const std::vector<std::string>& ids) {
    grpc::ClientContext context;
    auto stream = stub->Index(&context);
    v1::IndexRequest request;
    request.set_collection("busy");
    for (const std::string& id : ids) {
      v1::Item* item = request.add_items();
      item->set_id(id);
      item->set_image(png);
      item->set_caption("a car");
    }
    v1::IndexResponse response;
    EXPECT_TRUE(stream->Write(request) && stream->Read(&response));
    stream->WritesDone();
    return stream->Finish();
  };
  std::vector<std::string> stable;
  for (int i = 0; i < 120; ++i) stable.push_back(absl::StrCat("stable-", 1000 + i));
  for (size_t i = 0; i < stable.size(); i += 40) {
    ASSERT_TRUE(index({stable.begin() + i, stable.begin() + i + 40}).ok());
  }
  // Another client puts and deletes other ids all along, before and after the cursor.
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    auto writer_stub = server_->NewStub();
    for (int round = 0; !stop; ++round) {
      const std::string a = absl::StrCat("a-", round), z = absl::StrCat("z-", round);
      (void)index({a, z});
      grpc::ClientContext context;
      v1::DeleteRequest del;
      del.set_collection("busy");
      del.add_ids(a);
      v1::DeleteResponse deleted;
      (void)writer_stub->Delete(&context, del, &deleted);
    }
  });
  std::map<std::string, int> seen;
  v1::ListRequest request;
  request.set_collection("busy");
  request.set_page_size(7);
  int pages = 0;
  do {
    grpc::ClientContext context;
    v1::ListResponse page;
    const grpc::Status status = stub->List(&context, request, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    for (const v1::StoredItem& item : page.items()) ++seen[item.id()];
    request.set_cursor(page.next_cursor());
    ++pages;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // let the writer interleave
  } while (!request.cursor().empty() && pages < 1000);
  stop = true;
  writer.join();
  for (const std::string& id : stable) EXPECT_EQ(seen[id], 1) << id;
  for (const auto& [id, count] : seen) EXPECT_EQ(count, 1) << id << " listed twice";
  EXPECT_GT(pages, 120 / 7);

  // Bad input names the field.
  v1::ListRequest bad;
  bad.set_collection("busy");
  bad.set_page_size(1001);
  v1::ListResponse unused;
  {
    grpc::ClientContext context;
    grpc::Status status = stub->List(&context, bad, &unused);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_TRUE(absl::StrContains(status.error_message(), "page_size")) << status.error_message();
  }
  bad.set_page_size(10);
  bad.set_cursor("not-a-cursor");
  {
    grpc::ClientContext context;
    grpc::Status status = stub->List(&context, bad, &unused);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_TRUE(absl::StrContains(status.error_message(), "cursor")) << status.error_message();
  }
}

// search --item searches with a stored item (itself left out unless --include-self); --batch
// sends a JSON Lines file of SearchRequests and answers one JSON line per query, in order, a
// bad query failing alone (exit status 1).
TEST_F(CliE2eTest, SearchByItemAndInBatches) {
  ASSERT_EQ(Run("collections create shapes").exit_code, 0);
  CliResult r = Run("index --collection shapes " + FixtureDir() + "/images/photo");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  r = Run("--json search --collection shapes --item dog/dog_0.png --top-k 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json hits = nlohmann::json::parse(r.out)["hits"];
  ASSERT_EQ(hits.size(), 2u) << r.out;
  for (const auto& hit : hits) EXPECT_NE(hit["id"], "dog/dog_0.png") << r.out;
  EXPECT_TRUE(absl::StartsWith(hits[0]["id"].get<std::string>(), "dog/")) << r.out;
  r = Run("--json search --collection shapes --item dog/dog_0.png --top-k 1 --include-self");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["hits"][0]["id"], "dog/dog_0.png") << r.out;
  r = Run("search --collection shapes --item no/such.png");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "INVALID_ARGUMENT")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "query.item_id")) << r.err;

  const std::string batch = scratch_ + "/queries.jsonl";
  std::ofstream(batch) << R"({"text": "a picture of a cat", "topK": 1})" << "\n"
                       << R"({"itemId": "no/such.png"})" << "\n\n"
                       << R"({"itemId": "dog/dog_0.png", "mode": "PROVENANCE", "topK": 2})"
                       << "\n";
  r = Run("search --collection shapes --batch " + batch);
  EXPECT_EQ(r.exit_code, 1) << "a failed query fails the command: " << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "1 of 3 queries failed")) << r.err;
  std::vector<nlohmann::json> lines;
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    lines.push_back(nlohmann::json::parse(line));
  }
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_EQ(lines[0]["status"]["code"], 0);
  EXPECT_TRUE(absl::StartsWith(lines[0]["response"]["hits"][0]["id"].get<std::string>(),
                                  "cat/"))
      << r.out;
  EXPECT_EQ(lines[1]["status"]["code"], 3);  // INVALID_ARGUMENT
  EXPECT_TRUE(absl::StartsWith(lines[1]["status"]["message"].get<std::string>(),
                                  "queries[1]: query.item_id"))
      << r.out;
  EXPECT_EQ(lines[2]["status"]["code"], 0);
  EXPECT_EQ(lines[2]["response"]["hits"].size(), 2u);

  std::ofstream(batch) << "{not json\n";
  r = Run("search --collection shapes --batch " + batch);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, batch + ":1:")) << r.err;
}

}  // namespace
}  // namespace retrace
