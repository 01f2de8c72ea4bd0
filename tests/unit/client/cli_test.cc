// Tests of the `retrace` CLI (client/cli/cli.h): usage errors without a server, and each command
// against the in-process fake service (output format, batching, exit statuses).
#include "client/cli/cli.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/client/fake_retrace_service.h"

namespace retrace::cli {
namespace {

namespace fs = std::filesystem;
using ::retrace::testing::FakeRetraceServer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct CliRun {
  int status;
  std::string out;
  std::string err;
};

CliRun RunWith(const std::vector<std::string>& args, const std::string& env_server = "") {
  std::ostringstream out, err;
  const int status = RunCli(args, env_server, /*stderr_is_terminal=*/false, out, err);
  return {status, out.str(), err.str()};
}

TEST(ParseSearchModeTest, NamesInAnyCase) {
  EXPECT_EQ(*ParseSearchMode("caption"), v1::CAPTION_MATCH);
  EXPECT_EQ(*ParseSearchMode("Provenance"), v1::PROVENANCE);
  EXPECT_EQ(*ParseSearchMode("HYBRID"), v1::HYBRID);
  EXPECT_EQ(*ParseSearchMode("Caption-Text"), v1::CAPTION_TEXT);
  for (const char* bad : {"", "caption_match", "CAPTION_MATCH", "fusion", "caption_text"}) {
    auto mode = ParseSearchMode(bad);
    ASSERT_FALSE(mode.ok()) << bad;
    EXPECT_THAT(mode.status().message(),
                HasSubstr("expected caption, provenance, hybrid or caption-text"));
  }
}

TEST(CliUsageTest, HelpAndUsageErrors) {
  CliRun help = RunWith({"--help"});
  EXPECT_EQ(help.status, kExitOk);
  EXPECT_THAT(help.out, StartsWith("usage: retrace [--server HOST:PORT]"));
  EXPECT_EQ(RunWith({"help", "index"}).status, kExitOk);
  for (const char* command : {"caption", "collections", "index", "search", "delete"}) {
    CliRun run = RunWith({command, "--help"});
    EXPECT_EQ(run.status, kExitOk) << command;
    EXPECT_THAT(run.out, StartsWith(absl::StrCat("usage: retrace ", command))) << command;
  }
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  const Case cases[] = {
      {{}, "usage: retrace"},
      {{"frobnicate"}, "retrace: unknown command 'frobnicate'"},
      {{"--bogus", "search"}, "retrace: unknown option --bogus"},
      {{"--timeout", "soon", "collections", "list"}, "--timeout: expected a number of seconds"},
      {{"search", "--collection", "c", "--jsn"}, "retrace: search: unknown option --jsn"},
      {{"search", "--collection", "c"},
       "give exactly one of --image, --text, --embedding and --item"},
      {{"search", "--collection", "c", "--text", "t", "--mode", "fast"}, "--mode: expected"},
      {{"search", "--collection", "c", "--embedding", "1,x"}, "--embedding: element 2"},
      {{"search", "--text", "t"}, "retrace: search: missing --collection"},
      {{"index", "--collection", "c"}, "retrace: index: missing PATH"},
      {{"index", "--collection", "c", "--batch", "0", "x"}, "--batch: expected an integer"},
      {{"caption"}, "retrace: caption: missing FILE"},
      {{"delete", "--collection", "c"}, "retrace: delete: missing ID"},
      {{"collections", "describe"}, "retrace: collections describe: missing NAME"},
      {{"collections", "list", "x"}, "unexpected argument 'x'"},
      {{"collections", "rename", "x"}, "unknown subcommand 'rename'"},
      {{"collections", "drop", "x", "--shards", "2"},
       "--shards, --index and --image-index go with create only"},
  };
  for (const Case& c : cases) {
    CliRun run = RunWith(c.args);
    EXPECT_EQ(run.status, kExitUsage) << c.error;
    EXPECT_THAT(run.err, HasSubstr(c.error));
    EXPECT_THAT(run.err, HasSubstr("usage: retrace")) << c.error;
    EXPECT_EQ(run.out, "");
  }
}

TEST(CliUsageTest, UnreachableServerExitsThree) {
  CliRun run = RunWith({"--server", "127.0.0.1:1", "collections", "list"});
  EXPECT_EQ(run.status, kExitUnavailable);
  EXPECT_THAT(run.err, StartsWith("retrace: collections list: UNAVAILABLE: "));
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/retrace_cli_XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    root_ = pattern;
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string Write(const std::string& relative, const std::string& content = "image") {
    const fs::path path = root_ / relative;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << content;
    return path.string();
  }

  CliRun Cli(std::vector<std::string> args) {
    args.insert(args.begin(), {"--server", server_.address()});
    return RunWith(args);
  }

  FakeRetraceServer server_;
  fs::path root_;
};

TEST_F(CliTest, CollectionsCommands) {
  CliRun list = Cli({"collections", "list"});
  EXPECT_EQ(list.status, kExitOk) << list.err;
  EXPECT_EQ(list.out,
            "name   items  shards  index  dim\n"
            "alpha     12       2  Flat     8\n"
            "beta      12       2  Flat     8\n");

  CliRun missing = Cli({"collections", "describe", "missing"});
  EXPECT_EQ(missing.status, kExitFailed);
  EXPECT_EQ(missing.err,
            "retrace: collections describe: NOT_FOUND: collection 'missing' not found\n");

  CliRun create = Cli({"collections", "create", "pacs", "--shards", "4"});
  EXPECT_EQ(create.status, kExitOk) << create.err;
  EXPECT_THAT(create.out, StartsWith("created collection 'pacs'\nname                 pacs\n"));
  EXPECT_THAT(create.out, HasSubstr("shards               4\n"));

  CliRun json = RunWith({"--server", server_.address(), "--json", "collections", "describe", "x"});
  EXPECT_THAT(json.out, HasSubstr("\"caption_index\": \"Flat\""));
  EXPECT_THAT(json.out, HasSubstr("\"item_count\": \"0\""));  // int64 is a string in JSON

  EXPECT_EQ(Cli({"collections", "drop", "pacs"}).out, "dropped collection 'pacs'\n");
}

TEST_F(CliTest, SearchPrintsATableOrJson) {
  CliRun run = Cli({"search", "--collection", "c", "--text", "a horse"});
  EXPECT_EQ(run.status, kExitOk) << run.err;
  EXPECT_EQ(run.out,
            "rank   score  id  caption\n"
            "   1  0.9000  a   caption of a\n"
            "   2  0.8000  b   caption of b  domain=sketch  source=pacs\n"
            "   3  0.7000  c   caption of c\n");
  EXPECT_EQ(server_.service().last_search().text(), "a horse");
  EXPECT_EQ(server_.service().last_search().mode(), v1::CAPTION_MATCH);

  CliRun json = RunWith({"--server", server_.address(), "--json", "search", "--collection", "c",
                         "--embedding", "0.5,-1", "--top-k", "1"});
  EXPECT_EQ(json.status, kExitOk);
  EXPECT_THAT(json.out, HasSubstr("\"hits\": ["));
  EXPECT_THAT(json.out, HasSubstr("\"id\": \"a\""));
  EXPECT_THAT(server_.service().last_search().embedding().values(), ElementsAre(0.5f, -1.0f));
  EXPECT_EQ(server_.service().last_search().top_k(), 1);

  const std::string image = Write("q.png", "query-bytes");
  EXPECT_EQ(Cli({"search", "--collection", "c", "--image", image}).status, kExitOk);
  EXPECT_EQ(server_.service().last_search().image(), "query-bytes");

  CliRun provenance = Cli({"search", "--collection", "c", "--text", "t", "--mode", "provenance"});
  EXPECT_EQ(provenance.status, kExitFailed);
  EXPECT_THAT(provenance.err, StartsWith("retrace: search: UNIMPLEMENTED: "));
  EXPECT_EQ(server_.service().last_search().mode(), v1::PROVENANCE);

  CliRun no_file = Cli({"search", "--collection", "c", "--image", (root_ / "none.png").string()});
  EXPECT_EQ(no_file.status, kExitFailed);
  EXPECT_THAT(no_file.err, HasSubstr("none.png: cannot open: No such file or directory"));
}

TEST_F(CliTest, DeleteReportsEachId) {
  CliRun run = Cli({"delete", "--collection", "c", "x", "gone-1", "y"});
  EXPECT_EQ(run.status, kExitFailed);
  EXPECT_EQ(run.out,
            "id      result\n"
            "x       deleted\n"
            "gone-1  NOT_FOUND: id: not in the collection\n"
            "y       deleted\n");
  EXPECT_EQ(Cli({"delete", "--collection", "c", "x"}).status, kExitOk);
}

TEST_F(CliTest, CaptionBatchesAndShowsErrors) {
  std::vector<std::string> args = {"caption"};
  for (int i = 0; i < 40; ++i) args.push_back(Write(absl::StrCat("img", i, ".png"), "12345"));
  args.push_back(Write("broken.png", "bad"));
  args.push_back((root_ / "missing.png").string());
  CliRun run = Cli(args);
  EXPECT_EQ(run.status, kExitFailed);
  EXPECT_THAT(server_.service().caption_batch_sizes(), ElementsAre(32, 9));
  const std::vector<std::string> lines = absl::StrSplit(run.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 43u);
  EXPECT_THAT(lines[0], StartsWith("file "));
  EXPECT_THAT(lines[1], ::testing::MatchesRegex(".*/img0.png +caption 5 bytes"));
  EXPECT_THAT(lines[41], HasSubstr("error: INVALID_ARGUMENT: image: cannot decode"));
  EXPECT_THAT(lines[42], HasSubstr("error: NOT_FOUND: cannot open: No such file or directory"));
}

TEST_F(CliTest, IndexSummarizesAndListsFailures) {
  Write("pacs/sketch/horse/x.png");
  Write("pacs/photo/dog/y.JPG");
  Write("pacs/bad.png");
  Write("pacs/notes.txt");
  CliRun run = Cli({"index", "--collection", "c", "--batch", "2", (root_ / "pacs").string()});
  EXPECT_EQ(run.status, kExitFailed) << run.err;
  EXPECT_EQ(run.out,
            "indexed 2 of 3 items into 'c' (1 failed)\n"
            "skipped 1 entry that is not an image file\n"
            "id       error\n"
            "bad.png  INVALID_ARGUMENT: image: cannot decode\n");
  EXPECT_THAT(server_.service().index_batch_sizes(), ElementsAre(2, 1));

  fs::remove(root_ / "pacs/bad.png");
  CliRun ok = RunWith({"index", "--collection", "c", (root_ / "pacs").string()}, server_.address());
  EXPECT_EQ(ok.status, kExitOk) << ok.err;
  EXPECT_THAT(ok.out, StartsWith("indexed 2 of 2 items into 'c'\n"));
}

TEST_F(CliTest, IndexJsonLinesAndStreamErrors) {
  Write("a/1.png");
  Write("a/2.png");
  CliRun json = RunWith({"--server", server_.address(), "--json", "index", "--collection", "c",
                         (root_ / "a").string()});
  EXPECT_EQ(json.status, kExitOk) << json.err;
  EXPECT_EQ(json.out,
            R"({"id":"1.png","status":{"code":0,"message":""},"caption":"caption of 1.png",)"
            R"("unchanged":false,)"
            R"("near_duplicate_id":"","near_duplicate_similarity":0,"skipped":false})"
            "\n"
            R"({"id":"2.png","status":{"code":0,"message":""},"caption":"caption of 2.png",)"
            R"("unchanged":false,)"
            R"("near_duplicate_id":"","near_duplicate_similarity":0,"skipped":false})"
            "\n");

  CliRun missing = Cli({"index", "--collection", "missing", (root_ / "a").string()});
  EXPECT_EQ(missing.status, kExitFailed);
  EXPECT_EQ(missing.out, "indexed 0 of 2 items into 'missing' (2 not indexed)\n");
  EXPECT_EQ(missing.err, "retrace: index: NOT_FOUND: collection 'missing' not found\n");

  Write("b/x.png");
  CliRun duplicate = Cli({"index", "--collection", "c", (root_ / "a/1.png").string(),
                          (root_ / "b").string(), Write("c/x.png")});
  EXPECT_EQ(duplicate.status, kExitFailed);
  EXPECT_THAT(duplicate.err, HasSubstr("two files would get the id 'x.png'"));
}

}  // namespace
}  // namespace retrace::cli
