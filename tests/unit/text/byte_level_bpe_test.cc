// Tests for ByteLevelBpe (GPT-2 and OPT ids) against the goldens in ../shared/data/gpt2.
#include "core/text/byte_level_bpe.h"

#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/shared_data.h"
#include "tests/unit/text/temp_file.h"

namespace retrace::text {
namespace {

constexpr char kGpt2Vocab[] = "gpt2/vocab.json";
constexpr char kOptVocab[] = "gpt2/opt_vocab.json";
constexpr char kMerges[] = "gpt2/merges.txt";
constexpr int64_t kOptBos = 2;  // OPT's tokenizer prepends </s>

std::vector<nlohmann::json> ReadJsonl(const std::string& relative) {
  std::ifstream in(testing::SharedDataPath(relative));
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

// Loaded once per process (ctest runs each test in its own process).
const absl::StatusOr<ByteLevelBpe>& Gpt2() {
  static const auto* gpt2 = new absl::StatusOr<ByteLevelBpe>(
      ByteLevelBpe::Load(testing::SharedDataPath(kGpt2Vocab), testing::SharedDataPath(kMerges)));
  return *gpt2;
}

const absl::StatusOr<ByteLevelBpe>& Opt() {
  static const auto* opt = new absl::StatusOr<ByteLevelBpe>(
      ByteLevelBpe::Load(testing::SharedDataPath(kOptVocab), testing::SharedDataPath(kMerges)));
  return *opt;
}

class ByteLevelBpeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RETRACE_REQUIRE_SHARED_DATA(kMerges);
    RETRACE_REQUIRE_SHARED_DATA(kOptVocab);
    ASSERT_TRUE(Gpt2().ok()) << Gpt2().status();
    ASSERT_TRUE(Opt().ok()) << Opt().status();
    gpt2_ = &Gpt2().value();
    opt_ = &Opt().value();
  }

  const ByteLevelBpe* gpt2_ = nullptr;
  const ByteLevelBpe* opt_ = nullptr;
};

TEST_F(ByteLevelBpeTest, MatchesGpt2Goldens) {
  RETRACE_REQUIRE_SHARED_DATA("gpt2/gpt2_golden.jsonl");
  const std::vector<nlohmann::json> rows = ReadJsonl("gpt2/gpt2_golden.jsonl");
  ASSERT_FALSE(rows.empty());
  for (const nlohmann::json& row : rows) {
    const std::string text = row.at("text");
    SCOPED_TRACE(row.at("text").dump());
    const auto ids = row.at("ids").get<std::vector<int64_t>>();
    const auto opt_ids = row.at("opt_ids").get<std::vector<int64_t>>();
    const auto tokens = row.at("tokens").get<std::vector<std::string>>();

    absl::StatusOr<std::vector<int64_t>> encoded = gpt2_->Encode(text);
    ASSERT_TRUE(encoded.ok()) << encoded.status();
    EXPECT_EQ(*encoded, ids);
    ASSERT_EQ(tokens.size(), ids.size());
    for (size_t k = 0; k < tokens.size(); ++k) EXPECT_EQ(gpt2_->IdOf(tokens[k]), ids[k]);
    EXPECT_EQ(gpt2_->Decode(ids).value_or("<error>"), text);

    absl::StatusOr<std::vector<int64_t>> opt_encoded = opt_->Encode(text);
    ASSERT_TRUE(opt_encoded.ok()) << opt_encoded.status();
    opt_encoded->insert(opt_encoded->begin(), kOptBos);
    EXPECT_EQ(*opt_encoded, opt_ids);
    EXPECT_EQ(opt_->Decode(opt_ids, /*skip_special=*/true).value_or("<error>"), text);
  }
}

TEST_F(ByteLevelBpeTest, MatchesHuggingFaceGoldensFromLlamaCpp) {
  RETRACE_REQUIRE_SHARED_DATA("gpt2/gpt2_golden_llamacpp_hf.jsonl");
  const std::vector<nlohmann::json> rows = ReadJsonl("gpt2/gpt2_golden_llamacpp_hf.jsonl");
  ASSERT_FALSE(rows.empty());
  for (const nlohmann::json& row : rows) {
    const std::string text = row.at("text");
    SCOPED_TRACE(row.at("text").dump());
    const auto ids = row.at("ids").get<std::vector<int64_t>>();
    const auto roberta_ids = row.at("roberta_ids").get<std::vector<int64_t>>();
    EXPECT_EQ(gpt2_->Encode(text).value_or(std::vector<int64_t>{-1}), ids);
    EXPECT_EQ(opt_->Encode(text).value_or(std::vector<int64_t>{-1}), roberta_ids);
    EXPECT_EQ(gpt2_->Decode(ids).value_or("<error>"), text);
    EXPECT_EQ(opt_->Decode(roberta_ids).value_or("<error>"), text);
  }
}

TEST_F(ByteLevelBpeTest, OptAnchors) {
  EXPECT_EQ(opt_->vocab_size(), 50265u);
  EXPECT_EQ(gpt2_->vocab_size(), 50257u);
  EXPECT_EQ(opt_->IdOf("\u010A"), 50118);  // "Ċ", the newline
  EXPECT_EQ(gpt2_->IdOf("\u010A"), 198);
  EXPECT_EQ(opt_->IdOf("Hello"), 31414);
  EXPECT_EQ(opt_->IdOf("\u0120Hello"), 20920);
  EXPECT_EQ(opt_->IdOf("<|endoftext|>"), 50260);
  EXPECT_EQ(opt_->IdOf("no such token"), -1);

  absl::StatusOr<std::string> caption = opt_->Decode({2, 250, 1345, 9, 10, 4758, 50118});
  ASSERT_TRUE(caption.ok()) << caption.status();
  ASSERT_FALSE(caption->empty());
  EXPECT_EQ(caption->back(), '\n');
  EXPECT_EQ(caption->substr(0, caption->size() - 1), "A photo of a cat");
}

TEST_F(ByteLevelBpeTest, SpecialTokensAreSkippedOnlyWhenAsked) {
  const std::vector<int64_t> ids = {0, 1, 2, 3, 250, 50260, 50261, 50264};
  EXPECT_EQ(opt_->Decode(ids, /*skip_special=*/true).value_or("<error>"), "A");
  EXPECT_EQ(opt_->Decode(ids, /*skip_special=*/false).value_or("<error>"),
            "<s><pad></s><unk>A<|endoftext|>madeupword0000<mask>");
  EXPECT_EQ(gpt2_->Decode({32, 50256}).value_or("<error>"), "A");
  // Text that spells a special token is plain text, not the special id.
  absl::StatusOr<std::vector<int64_t>> encoded = opt_->Encode("</s>");
  ASSERT_TRUE(encoded.ok());
  EXPECT_GT(encoded->size(), 1u);
  EXPECT_EQ(opt_->Decode(*encoded).value_or("<error>"), "</s>");
}

TEST_F(ByteLevelBpeTest, UnknownIdIsInvalidArgumentNamingIdAndPosition) {
  absl::StatusOr<std::string> text = opt_->Decode({250, 1345, 99999});
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(text.status().message().find("99999"), std::string::npos) << text.status();
  EXPECT_NE(text.status().message().find("position 2"), std::string::npos) << text.status();
  EXPECT_EQ(gpt2_->Decode({-1}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ByteLevelBpeTest, SplitMultibyteCharacterBecomesReplacementCharacter) {
  // "é" is C3 A9; its byte tokens are "Ã" (U+00C3) and "©" (U+00A9).
  const int64_t c3 = gpt2_->IdOf("\u00C3");
  const int64_t a9 = gpt2_->IdOf("\u00A9");
  ASSERT_GE(c3, 0);
  ASSERT_GE(a9, 0);
  EXPECT_EQ(gpt2_->Decode({c3, a9}).value_or("<error>"), "\u00E9");
  EXPECT_EQ(gpt2_->Decode({c3}).value_or("<error>"), "\uFFFD");
  EXPECT_EQ(gpt2_->Decode({c3, gpt2_->IdOf("a")}).value_or("<error>"), "\uFFFDa");
  // A 4-byte emoji cut after its third byte is one U+FFFD, as Python's errors="replace".
  absl::StatusOr<std::vector<int64_t>> cat = gpt2_->Encode("\U0001F431");
  ASSERT_TRUE(cat.ok());
  ASSERT_GE(cat->size(), 2u);
  EXPECT_EQ(gpt2_->Decode({cat->front()}).value_or("<error>"), "\uFFFD");
}

TEST_F(ByteLevelBpeTest, InvalidUtf8InputIsEncodedAsReplacementCharacter) {
  EXPECT_EQ(gpt2_->Encode("a\xFF").value_or(std::vector<int64_t>{}),
            gpt2_->Encode("a\uFFFD").value_or(std::vector<int64_t>{-1}));
}

TEST_F(ByteLevelBpeTest, LongWordsAreFast) {
  std::string text;
  for (size_t i = 0; text.size() < (1u << 20); ++i)
    text += "abcdefghijklmnopqrstuvwxyz"[(i * 11) % 26];
  absl::StatusOr<std::vector<int64_t>> ids = gpt2_->Encode(text);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(gpt2_->Decode(*ids).value_or("<error>"), text);
}

TEST(ByteLevelBpeLoadTest, WithoutMergesOnlyDecodes) {
  RETRACE_REQUIRE_SHARED_DATA(kOptVocab);
  absl::StatusOr<ByteLevelBpe> opt = ByteLevelBpe::Load(testing::SharedDataPath(kOptVocab), "");
  ASSERT_TRUE(opt.ok()) << opt.status();
  EXPECT_EQ(opt->Encode("a cat").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(opt->Decode({2, 250, 1345}).value_or("<error>"), "A photo");
}

TEST(ByteLevelBpeLoadTest, MissingFilesAreNotFound) {
  const std::string missing = ::testing::TempDir() + "/no_such_dir/vocab.json";
  EXPECT_EQ(ByteLevelBpe::Load(missing, "").status().code(), absl::StatusCode::kNotFound);
  RETRACE_REQUIRE_SHARED_DATA(kGpt2Vocab);
  EXPECT_EQ(ByteLevelBpe::Load(testing::SharedDataPath(kGpt2Vocab), missing).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ByteLevelBpeLoadTest, MalformedFilesAreInvalidArgument) {
  for (const char* json :
       {"{\"a\": 0", "[1, 2]", "{\"a\": \"x\"}", "{\"a\": -1}", "{\"a\": 0, \"b\": 0}"}) {
    SCOPED_TRACE(json);
    const TempFile file("bad.json", json);
    absl::StatusOr<ByteLevelBpe> bpe = ByteLevelBpe::Load(file.path(), "");
    ASSERT_FALSE(bpe.ok());
    EXPECT_EQ(bpe.status().code(), absl::StatusCode::kInvalidArgument) << bpe.status();
  }
  // A vocabulary without the 256 byte tokens cannot encode.
  const TempFile tiny("tiny.json", R"({"a": 0})");
  EXPECT_EQ(ByteLevelBpe::Load(tiny.path(), tiny.path()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ByteLevelBpe::Load(tiny.path(), "").ok());

  RETRACE_REQUIRE_SHARED_DATA(kGpt2Vocab);
  const TempFile merges("bad_merges.txt", "#version: 0.2\nĠ t\nĠt he llo\n");
  absl::StatusOr<ByteLevelBpe> bpe =
      ByteLevelBpe::Load(testing::SharedDataPath(kGpt2Vocab), merges.path());
  ASSERT_FALSE(bpe.ok());
  EXPECT_EQ(bpe.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bpe.status().message().find(merges.path() + ":3:"), std::string::npos) << bpe.status();
}

}  // namespace
}  // namespace retrace::text
