// `retrace mine-pairs` against the real server with the oracle models. The oracle CLIP's text
// tower maps a caption to the sum of the unit vectors of the class words in it
// (tools/fixtures/README.md), so items indexed with given captions have caption embeddings we
// know, and so do their nearest captions and cosines:
//   "a dog" e0 · "a dog and a cat" (e0+e1)/√2 = 0.707107, · "a dog, a cat and a horse" 0.577350;
//   "a dog and a cat" · "a dog, a cat and a horse" = 2/√6 = 0.816497; "a bird" is orthogonal to
//   every other caption (all tie at 0: the smallest id wins).
// The collection is indexed with `retrace index --captions`. Also: the ids from a file, stdin or
// an image folder; the embeddings file equals Get's embeddings; --resume after an interruption
// anywhere writes the uninterrupted run's bytes; bad input fails naming the option or file.
#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/retrace_client.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/server_process.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::FixtureDir;

using testing::CliResult;

// The hand-built collection: id -> caption.
const std::map<std::string, std::string> kCaptions = {
    {"item-a.png", "a dog"},
    {"item-b.png", "a dog and a cat"},
    {"item-c.png", "a dog, a cat and a horse"},
    {"item-d.png", "a house"},
    {"item-e.png", "a house and a guitar"},
    {"item-f.png", "a dog"},  // the same caption as item-a
    {"item-g.png", "a bird"},
};

struct Expected {
  std::string nearest;
  double similarity;
};

class MinePairsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(FixtureDir() + "/oracle/clip/model.pt")) {
      GTEST_SKIP() << "oracle models not found in " << FixtureDir()
                   << " (the make_test_fixtures step needs ../shared/data)";
    }
    server_ = std::make_unique<testing::ServerProcess>(
        testing::ServerOptions{FixtureDir() + "/oracle", testing::NewTempDir("mine"), {}});
    ASSERT_TRUE(server_->Start().ok()) << server_->LogTail();
    scratch_ = testing::NewTempDir("mine-out");
    client::ClientOptions options;
    options.server = server_->address();
    client_ = client::RetraceClient::Connect(options);
  }

  CliResult Run(const std::string& args, const std::string& stdin_file = "/dev/null") {
    return testing::RunCli(server_->address(), args, scratch_, stdin_file);
  }

  // IndexCaptioned makes collection `name` holding kCaptions' items with `retrace index
  // --captions`: a folder of copies of one fixture image, named by id (the captions are given,
  // so the image does not decide the caption embedding).
  void IndexCaptioned(const std::string& name) {
    ASSERT_EQ(Run("collections create " + name + " --shards 2").exit_code, 0);
    const std::string folder = scratch_ + "/captioned";
    fs::create_directories(folder);
    std::ofstream captions(scratch_ + "/captions.jsonl");
    for (const auto& [id, caption] : kCaptions) {
      fs::copy_file(FixtureDir() + "/images/photo/dog/dog_0.png", folder + "/" + id,
                    fs::copy_options::overwrite_existing);
      captions << json{{"id", id}, {"caption", caption}}.dump() << "\n";
    }
    captions.close();
    CliResult r =
        Run("index --collection " + name + " --captions " + scratch_ + "/captions.jsonl " + folder);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    ASSERT_TRUE(absl::StrContains(r.out, "indexed 7 of 7")) << r.out;
  }

  std::string WriteIds(const std::string& name, const std::vector<std::string>& ids) {
    const std::string path = scratch_ + "/" + name;
    std::ofstream out(path);
    for (const std::string& id : ids) out << id << "\n";
    return path;
  }

  static std::vector<std::string> AllIds() {
    std::vector<std::string> ids;
    for (const auto& [id, caption] : kCaptions) ids.push_back(id);
    return ids;
  }

  static std::vector<json> ReadLines(const std::string& path) {
    std::vector<json> lines;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
    return lines;
  }

  // CheckPairs compares every line with `expected` (by id, in the order of `ids`).
  static void CheckPairs(const std::string& path, const std::vector<std::string>& ids,
                         const std::map<std::string, Expected>& expected) {
    const std::vector<json> lines = ReadLines(path);
    ASSERT_EQ(lines.size(), ids.size()) << testing::ReadFileBytes(path);
    for (size_t i = 0; i < ids.size(); ++i) {
      const json& line = lines[i];
      ASSERT_EQ(line.at("id"), ids[i]);
      const Expected& want = expected.at(ids[i]);
      EXPECT_EQ(line.at("caption"), kCaptions.at(ids[i]));
      EXPECT_EQ(line.at("nearest"), want.nearest) << line.dump();
      EXPECT_EQ(line.at("nearest_caption"), kCaptions.at(want.nearest)) << line.dump();
      EXPECT_NEAR(line.at("similarity").get<double>(), want.similarity, 2e-6) << line.dump();
    }
  }

  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<client::RetraceClient> client_;
  std::string scratch_;
};

const std::map<std::string, Expected> kNearest = {
    {"item-a.png", {"item-f.png", 1.0}},      {"item-b.png", {"item-c.png", 0.816497}},
    {"item-c.png", {"item-b.png", 0.816497}}, {"item-d.png", {"item-e.png", 0.707107}},
    {"item-e.png", {"item-d.png", 0.707107}}, {"item-f.png", {"item-a.png", 1.0}},
    {"item-g.png", {"item-a.png", 0.0}},  // orthogonal to all: a tie, the smallest id
};

TEST_F(MinePairsE2eTest, NearestCaptionsOfAHandBuiltCollection) {
  IndexCaptioned("captions");
  const std::vector<std::string> ids = AllIds();
  const std::string id_file = WriteIds("ids.txt", ids);
  // --top-k 2: "a bird" ties with everyone and "a dog" with its twin, so both need deeper
  // searches than the first.
  CliResult r = Run("mine-pairs --collection captions --ids " + id_file + " --out " + scratch_ +
                    "/pairs.jsonl --top-k 2");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "mined 7 items of 'captions'")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "7 with a nearest item")) << r.out;
  EXPECT_TRUE(r.err.empty()) << "no progress line without a terminal: " << r.err;
  CheckPairs(scratch_ + "/pairs.jsonl", ids, kNearest);

  // Identical captions left out: "a dog" (both) now pairs with "a dog and a cat".
  std::map<std::string, Expected> distinct = kNearest;
  distinct["item-a.png"] = {"item-b.png", 0.707107};
  distinct["item-f.png"] = {"item-b.png", 0.707107};
  r = Run("mine-pairs --collection captions --ids - --exclude-identical-captions --top-k 2 --out " +
              scratch_ + "/distinct.jsonl",
          id_file);  // ids from stdin
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  CheckPairs(scratch_ + "/distinct.jsonl", ids, distinct);
}

TEST_F(MinePairsE2eTest, EmbeddingsFileHoldsEachItemsStoredCaptionEmbedding) {
  IndexCaptioned("captions");
  const std::vector<std::string> ids = {"item-c.png", "missing-one", "item-a.png"};
  CliResult r = Run("--json mine-pairs --collection captions --ids " + WriteIds("ids.txt", ids) +
                    " --out " + scratch_ + "/p.jsonl --embeddings-out " + scratch_ + "/e.bin");
  EXPECT_EQ(r.exit_code, 1) << "an id that is not stored fails the run: " << r.out << r.err;
  const json summary = json::parse(r.out);
  EXPECT_EQ(summary.at("items"), 3);
  EXPECT_EQ(summary.at("paired"), 2);
  EXPECT_EQ(summary.at("failed"), 1);
  const std::vector<json> lines = ReadLines(scratch_ + "/p.jsonl");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1].at("id"), "missing-one");
  EXPECT_TRUE(absl::StartsWith(lines[1].at("error").get<std::string>(), "NOT_FOUND")) << lines[1];

  v1::GetRequest get;
  get.set_collection("captions");
  get.set_include_embeddings(true);
  get.add_ids("item-c.png");
  get.add_ids("item-a.png");
  v1::GetResponse stored;
  ASSERT_TRUE(client_->Get(get, &stored).ok());

  const std::string bytes = testing::ReadFileBytes(scratch_ + "/e.bin");
  ASSERT_GE(bytes.size(), 12u);
  EXPECT_EQ(bytes.substr(0, 8), "RTCEMB1\n");
  uint32_t dim;
  std::memcpy(&dim, bytes.data() + 8, 4);
  ASSERT_EQ(dim, 16u);  // the oracle CLIP's D
  size_t at = 12;
  for (const v1::GetResult& want : stored.results()) {
    uint32_t size;
    ASSERT_LE(at + 4, bytes.size());
    std::memcpy(&size, bytes.data() + at, 4);
    EXPECT_EQ(bytes.substr(at + 4, size), want.item().id());
    at += 4 + size;
    std::vector<float> values(dim);
    ASSERT_LE(at + 4 * dim, bytes.size());
    std::memcpy(values.data(), bytes.data() + at, 4 * dim);
    at += 4 * dim;
    EXPECT_EQ(values, std::vector<float>(want.item().caption_text().values().begin(),
                                         want.item().caption_text().values().end()));
  }
  EXPECT_EQ(at, bytes.size()) << "one record per stored item, none for the missing id";
}

// Interrupted after any number of lines, with a partial line and the embeddings file ahead or
// cut inside a record, --resume ends with exactly the bytes of the uninterrupted run.
TEST_F(MinePairsE2eTest, ResumeWritesWhatAnUninterruptedRunWrites) {
  IndexCaptioned("captions");
  const std::string ids = WriteIds("ids.txt", AllIds());
  const std::string base = "mine-pairs --collection captions --ids " + ids + " --top-k 3";
  ASSERT_EQ(
      Run(base + " --out " + scratch_ + "/full.jsonl --embeddings-out " + scratch_ + "/full.bin")
          .exit_code,
      0);
  const std::string full = testing::ReadFileBytes(scratch_ + "/full.jsonl");
  const std::string full_emb = testing::ReadFileBytes(scratch_ + "/full.bin");
  const std::vector<std::string> lines = absl::StrSplit(full, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 7u);
  const size_t record = 4 + 10 + 16 * 4;  // every id here is 10 bytes

  struct Cut {
    size_t lines;          // complete lines kept
    size_t partial_bytes;  // then this much of the next line
    size_t records_bytes;  // bytes of the embeddings file kept
  };
  for (const Cut& cut :
       {Cut{0, 0, 0}, Cut{0, 5, 12 + 3}, Cut{3, 10, 12 + 3 * record},
        Cut{3, 0, 12 + 4 * record + 7}, Cut{6, 1, full_emb.size()}, Cut{7, 0, full_emb.size()}}) {
    std::string text;
    for (size_t i = 0; i < cut.lines; ++i) text += lines[i] + "\n";
    if (cut.lines < lines.size()) text += lines[cut.lines].substr(0, cut.partial_bytes);
    const std::string out = scratch_ + "/run.jsonl", emb = scratch_ + "/run.bin";
    std::ofstream(out, std::ios::trunc | std::ios::binary) << text;
    std::ofstream(emb, std::ios::trunc | std::ios::binary) << full_emb.substr(0, cut.records_bytes);
    CliResult r = Run(base + " --resume --out " + out + " --embeddings-out " + emb);
    ASSERT_EQ(r.exit_code, 0) << cut.lines << ": " << r.out << r.err;
    EXPECT_EQ(testing::ReadFileBytes(out), full) << "cut after " << cut.lines << " lines";
    EXPECT_EQ(testing::ReadFileBytes(emb), full_emb) << "cut after " << cut.lines << " lines";
    if (cut.lines > 0) {
      EXPECT_TRUE(absl::StrContains(r.out, absl::StrCat("after the ", cut.lines, " already there")))
          << r.out;
    }
  }

  // Resuming with other ids is refused, naming the line and the id.
  const std::string other = WriteIds("other.txt", {"item-a.png", "item-c.png"});
  CliResult r = Run("mine-pairs --collection captions --resume --ids " + other + " --out " +
                    scratch_ + "/full.jsonl");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(
      r.err, "full.jsonl:2 is for 'item-b.png', but id 2 of " + other + " is 'item-c.png'"))
      << r.err;
}

TEST_F(MinePairsE2eTest, IdsFromAnImageFolderAreTheOnesIndexGave) {
  const std::string images = FixtureDir() + "/images";
  ASSERT_EQ(Run("collections create shapes").exit_code, 0);
  ASSERT_EQ(Run("index --collection shapes " + images).exit_code, 0);  // oracle captions
  CliResult r = Run("mine-pairs --collection shapes --images " + images + " --out " + scratch_ +
                    "/shapes.jsonl");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::vector<json> lines = ReadLines(scratch_ + "/shapes.jsonl");
  ASSERT_EQ(lines.size(), 96u);  // 4 domains x 8 classes x 3
  for (const json& line : lines) {
    // "a picture of a <class>": another image of the same class (the smallest id but its own).
    const std::string id = line.at("id");
    const std::string label = std::vector<std::string>(absl::StrSplit(id, '/'))[1];
    EXPECT_EQ(line.at("caption"), "a picture of a " + label) << line.dump();
    EXPECT_EQ(line.at("nearest_caption"), line.at("caption")) << line.dump();
    EXPECT_EQ(line.at("similarity").get<double>(), 1.0) << line.dump();
    const std::string want = id == "clipart/" + label + "/" + label + "_0.png"
                                 ? "clipart/" + label + "/" + label + "_1.png"
                                 : "clipart/" + label + "/" + label + "_0.png";
    EXPECT_EQ(line.at("nearest"), want) << line.dump();
  }
}

TEST_F(MinePairsE2eTest, BadInputFailsWithAClearMessage) {
  IndexCaptioned("captions");
  const std::string ids = WriteIds("ids.txt", AllIds());
  const std::string out = " --out " + scratch_ + "/o.jsonl";
  CliResult r = Run("mine-pairs --collection captions --ids " + ids);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "missing --out")) << r.err;
  r = Run("mine-pairs --collection captions --ids " + ids + " --images /tmp" + out);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "exactly one of --ids and --images")) << r.err;
  r = Run("mine-pairs --collection captions --ids " + ids + " --top-k 1" + out);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "--top-k: expected an integer from 2")) << r.err;
  r = Run("mine-pairs --collection captions --ids " + scratch_ + "/nope.txt" + out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "--ids: " + scratch_ + "/nope.txt: cannot be read"))
      << r.err;
  r = Run("mine-pairs --collection captions --images " + scratch_ + "/nope" + out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "--images: ")) << r.err;
  r = Run("mine-pairs --collection nope --ids " + ids + out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "NOT_FOUND")) << r.err;
  EXPECT_FALSE(fs::exists(scratch_ + "/o.jsonl")) << "nothing is written for a missing collection";
  ASSERT_EQ(Run("mine-pairs --collection captions --ids " + ids + out).exit_code, 0);
  r = Run("mine-pairs --collection captions --ids " + ids + out);  // never overwritten
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "o.jsonl already exists")) << r.err;
  r = Run("mine-pairs --collection captions --ids " + ids + out + " --embeddings-out " + scratch_ +
          "/o.jsonl");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "--embeddings-out must differ from --out")) << r.err;

  // index --captions: an id no file has, or a line that is not {"id", "caption"}, stops it.
  std::ofstream(scratch_ + "/bad.jsonl") << R"({"id": "item-z.png", "caption": "a cat"})"
                                         << "\n";
  r = Run("index --collection captions --captions " + scratch_ + "/bad.jsonl " + scratch_ +
          "/captioned");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(
      r.err, "'item-z.png' in " + scratch_ + "/bad.jsonl is the id of no image file given"))
      << r.err;
  // mine-pairs' output is a captions file: its error lines are skipped.
  r = Run("mine-pairs --collection captions --ids " +
          WriteIds("some.txt", {"item-a.png", "x.png"}) + " --out " + scratch_ + "/some.jsonl");
  ASSERT_EQ(r.exit_code, 1) << "x.png is not stored: " << r.out << r.err;
  r = Run("index --collection captions --captions " + scratch_ + "/some.jsonl " + scratch_ +
          "/captioned");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  // item-a's caption is the one stored: unchanged. The others get the server's captions now.
  EXPECT_TRUE(absl::StrContains(r.out, "indexed 7 of 7")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "1 of them were already stored")) << r.out;
  std::ofstream(scratch_ + "/bad.jsonl") << R"({"id": "item-a.png"})"
                                         << "\n";
  r = Run("index --collection captions --captions " + scratch_ + "/bad.jsonl " + scratch_ +
          "/captioned");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "bad.jsonl:1: expected {\"id\": ..., \"caption\": ...}"))
      << r.err;

  r = Run("mine-pairs --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.out, "--exclude-identical-captions")) << r.out;
  r = Run("--help");
  EXPECT_TRUE(absl::StrContains(r.out, "mine-pairs")) << r.out;
}

}  // namespace
}  // namespace retrace
