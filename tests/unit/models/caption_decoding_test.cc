// Caption decoding over the real TorchScript runtime with the decoding fixtures
// (tools/fixtures/decoding_models.py): the rules captioner, whose bigram logits per image class
// make each rule observable, and a random transformer with a real KV cache. Expected captions
// follow from the fixture's logits (tools/fixtures/README.md, "Decoding fixtures").
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "core/image/decode.h"
#include "core/models/decoding/next_token_model.h"
#include "core/models/method_filter.h"
#include "core/models/torch/torchscript_module.h"
#include "core/text/byte_level_bpe.h"
#include "gtest/gtest.h"
#include "server/model_folder.h"
#include "tests/support/server_process.h"

namespace retrace {
namespace {

namespace fs = std::filesystem;
using models::CaptionOptions;
using models::Captioner;
using testing::FixtureDir;

using WrapModule =
    std::function<std::unique_ptr<models::ModelModule>(std::unique_ptr<models::ModelModule>)>;

// LoadWrapped loads a captioner folder with its module wrapped by `wrap`.
absl::StatusOr<std::unique_ptr<Captioner>> LoadWrapped(const std::string& folder,
                                                       const WrapModule& wrap) {
  auto manifest = server::ReadManifest(folder, models::ModelKind::kCaptioner);
  if (!manifest.ok()) return manifest.status();
  auto bpe = text::ByteLevelBpe::Load(manifest->tokenizer.vocab_path,
                                      manifest->tokenizer.merges_path);
  if (!bpe.ok()) return bpe.status();
  auto module = models::LoadTorchScriptModule(folder + "/model.pt");
  if (!module.ok()) return module.status();
  return Captioner::Create(*std::move(manifest), wrap(*std::move(module)), *std::move(bpe));
}

// LoadHiding loads a captioner folder with some of its methods hidden.
absl::StatusOr<std::unique_ptr<Captioner>> LoadHiding(const std::string& folder,
                                                      std::vector<std::string> hidden) {
  return LoadWrapped(folder, [&](std::unique_ptr<models::ModelModule> module) {
    return std::make_unique<models::MethodFilter>(std::move(module), std::move(hidden));
  });
}

// KeepSpy wraps a real module and records what decoding asks of it: calls through the host path
// (CallTuple), kept calls per method, rows selected on the module's side, the values kept, and the
// shape of every value copied to the host. One decoding thread at a time.
class KeepSpy final : public models::ModelModule {
 public:
  struct Record {
    int host_tuple_calls = 0;
    std::map<std::string, int> kept_calls;
    int selects = 0;
    std::vector<models::ModelValuePtr> kept;
    std::vector<std::vector<int64_t>> to_host_shapes;
  };

  KeepSpy(std::unique_ptr<models::ModelModule> inner, std::shared_ptr<Record> record)
      : inner_(std::move(inner)), record_(std::move(record)) {}

  absl::StatusOr<models::Tensor> Call(const std::string& method,
                                      std::vector<models::Tensor> inputs) const override {
    return inner_->Call(method, std::move(inputs));
  }
  absl::StatusOr<std::vector<models::Tensor>> CallTuple(
      const std::string& method, std::vector<models::Tensor> inputs) const override {
    ++record_->host_tuple_calls;
    return inner_->CallTuple(method, std::move(inputs));
  }
  absl::StatusOr<std::vector<models::ModelValuePtr>> CallTupleKeep(
      const std::string& method, std::vector<models::ModelInput> inputs) const override {
    ++record_->kept_calls[method];
    auto out = inner_->CallTupleKeep(method, std::move(inputs));
    if (out.ok()) record_->kept.insert(record_->kept.end(), out->begin(), out->end());
    return out;
  }
  absl::StatusOr<models::ModelValuePtr> SelectRows(const models::ModelValue& value,
                                                   const std::vector<size_t>& rows) const override {
    ++record_->selects;
    return inner_->SelectRows(value, rows);
  }
  absl::StatusOr<models::Tensor> ToHost(const models::ModelValue& value) const override {
    record_->to_host_shapes.push_back(value.shape());
    return inner_->ToHost(value);
  }
  bool HasMethod(std::string_view method) const override { return inner_->HasMethod(method); }
  const std::string& Source() const override { return inner_->Source(); }

 private:
  std::unique_ptr<models::ModelModule> inner_;
  std::shared_ptr<Record> record_;
};

// LoadSpied loads a captioner folder whose module reports to `record`.
absl::StatusOr<std::unique_ptr<Captioner>> LoadSpied(const std::string& folder,
                                                     std::shared_ptr<KeepSpy::Record> record) {
  return LoadWrapped(folder, [&](std::unique_ptr<models::ModelModule> module) {
    return std::make_unique<KeepSpy>(std::move(module), record);
  });
}

// VocabSize is the captioner folder's V (its manifest's vocab_size).
int VocabSize(const std::string& folder) {
  auto manifest = server::ReadManifest(folder, models::ModelKind::kCaptioner);
  EXPECT_TRUE(manifest.ok()) << manifest.status();
  return manifest.ok() ? manifest->captioner.vocab_size : -1;
}

class CaptionDecodingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(FixtureDir() + "/rules/captioner/model.pt")) {
      GTEST_SKIP() << "decoding fixtures not found in " << FixtureDir()
                   << " (the make_test_fixtures step needs ../shared/data)";
    }
    auto cached = server::LoadCaptioner(FixtureDir() + "/rules/captioner");
    ASSERT_TRUE(cached.ok()) << cached.status();
    cached_ = *std::move(cached);
    auto recompute = LoadHiding(FixtureDir() + "/rules/captioner", {"prefill", "step"});
    ASSERT_TRUE(recompute.ok()) << recompute.status();
    recompute_ = *std::move(recompute);
    for (const char* name : {"dog", "cat", "horse", "house"}) {
      images_.push_back(Decode(FixtureDir() + "/images/photo/" + name + "/" + name + "_0.png"));
    }
  }

  static image::Image Decode(const std::string& path) {
    auto image = image::DecodeImage(testing::ReadFileBytes(path), image::DecodeLimits{});
    EXPECT_TRUE(image.ok()) << path << ": " << image.status();
    return image.ok() ? *image : image::Image{};
  }

  // Caption captions one image (0 dog, 1 cat, 2 horse, 3 house) with the cached captioner.
  std::string Caption(int image, const CaptionOptions& options) {
    auto captions = cached_->Caption({&images_[image]}, options);
    EXPECT_TRUE(captions.ok()) << captions.status();
    return captions.ok() ? (*captions)[0] : "<error>";
  }

  std::vector<const image::Image*> All() const {
    std::vector<const image::Image*> all;
    for (const image::Image& i : images_) all.push_back(&i);
    return all;
  }

  std::unique_ptr<Captioner> cached_, recompute_;
  std::vector<image::Image> images_;
};

CaptionOptions Beams(int n) {
  CaptionOptions o;
  o.num_beams = n;
  return o;
}

TEST_F(CaptionDecodingTest, TheFixtureHasBothPathsAndTheHidingCopyHasOnlyRecompute) {
  EXPECT_TRUE(cached_->cached_decoding());
  EXPECT_FALSE(recompute_->cached_decoding());
}

TEST_F(CaptionDecodingTest, GreedyRepeatsAPhraseUntilMaxNewTokens) {
  // dog: BOS -> headphones; headphones -> and (3) | \n (2); and -> headphones (3) | dog (2).
  EXPECT_EQ(Caption(0, {}), "headphones and headphones and headphones and headphones and");
  CaptionOptions three;
  three.max_new_tokens = 3;
  EXPECT_EQ(Caption(0, three), "headphones and headphones");
}

TEST_F(CaptionDecodingTest, NoRepeatBigramsEndTheRepetition) {
  CaptionOptions o;
  o.no_repeat_ngram_size = 2;
  // After "headphones and headphones", "and" would repeat the bigram: \n (2) wins.
  EXPECT_EQ(Caption(0, o), "headphones and headphones");
  o.no_repeat_ngram_size = 1;  // "headphones" may not come back after "and": dog (2) wins
  EXPECT_EQ(Caption(0, o), "headphones and dog");
}

TEST_F(CaptionDecodingTest, RepetitionPenaltyPrefersTheUnusedWord) {
  CaptionOptions o;
  o.repetition_penalty = 2.0f;  // after "and": headphones 3 / 2 = 1.5 < dog 2
  EXPECT_EQ(Caption(0, o), "headphones and dog");
  o.repetition_penalty = 1.4f;  // 3 / 1.4 = 2.14 > 2: still repeats, stopped by max tokens
  o.max_new_tokens = 3;
  EXPECT_EQ(Caption(0, o), "headphones and headphones");
}

TEST_F(CaptionDecodingTest, BeamSearchFindsTheMoreProbableCaptionGreedyMisses) {
  // cat: BOS -> headphones (1.0) | a (0.8); after headphones four flat words (\n best, p 0.29);
  // after "a" the class word and then \n are certain. Greedy takes headphones then \n:
  // log p = -0.60 - 1.24. Beam 2 keeps "a": "a cat \n" has log p = -0.80.
  EXPECT_EQ(Caption(1, {}), "headphones");
  EXPECT_EQ(Caption(1, Beams(2)), "a cat");
  EXPECT_EQ(Caption(1, Beams(8)), "a cat");
}

TEST_F(CaptionDecodingTest, LengthPenaltyTradesShortForLong) {
  // house: "a house \n" (3 tokens, log p = -0.644) vs "a house with picture \n" (5, -0.744).
  // length_penalty 1: -0.215 vs -0.149, the long one wins; 0: the sums decide, the short one.
  EXPECT_EQ(Caption(3, {}), "a house");
  EXPECT_EQ(Caption(3, Beams(2)), "a house with picture");
  CaptionOptions sums = Beams(2);
  sums.length_penalty = 0.0f;
  EXPECT_EQ(Caption(3, sums), "a house");
  sums.length_penalty = -1.0f;
  EXPECT_EQ(Caption(3, sums), "a house");
}

TEST_F(CaptionDecodingTest, MinAndMaxNewTokens) {
  // horse: BOS -> a; a -> horse; horse -> \n (5) | with (1); with -> \n (5) | a (1).
  EXPECT_EQ(Caption(2, {}), "a horse");
  CaptionOptions o;
  o.min_new_tokens = 3;  // \n is banned after "a horse": "with", then \n is allowed again
  EXPECT_EQ(Caption(2, o), "a horse with");
  o.min_new_tokens = 4;
  EXPECT_EQ(Caption(2, o), "a horse with a horse");
  o.num_beams = 3;
  EXPECT_EQ(Caption(2, o), "a horse with a horse");
  CaptionOptions one;
  one.max_new_tokens = 1;
  EXPECT_EQ(Caption(2, one), "a");
  one.num_beams = 2;
  EXPECT_EQ(Caption(2, one), "a");
}

TEST_F(CaptionDecodingTest, APromptChangesTheContinuationAndIsNotReturned) {
  CaptionOptions o;
  o.prompt = "a photo of";  // BOS, "a", " photo", " of" -> after " of" the class word, then \n
  for (int i = 0; i < 4; ++i) {
    const std::string word[] = {"dog", "cat", "horse", "house"};
    EXPECT_EQ(Caption(i, o), word[i]) << i;
  }
  o.num_beams = 3;
  EXPECT_EQ(Caption(1, o), "cat");
}

TEST_F(CaptionDecodingTest, ABatchGivesEachImageItsOwnCaption) {
  for (CaptionOptions options : {CaptionOptions{}, Beams(2), Beams(3)}) {
    options.max_new_tokens = 6;
    auto batch = cached_->Caption(All(), options);
    ASSERT_TRUE(batch.ok()) << batch.status();
    ASSERT_EQ(batch->size(), 4u);
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ((*batch)[i], Caption(i, options)) << "image " << i << " beams " << options.num_beams;
    }
  }
}

TEST_F(CaptionDecodingTest, CachedAndRecomputedDecodingAgree) {
  std::vector<CaptionOptions> all = {{}, Beams(2), Beams(4)};
  CaptionOptions rules = Beams(3);
  rules.no_repeat_ngram_size = 2;
  rules.repetition_penalty = 1.3f;
  rules.min_new_tokens = 2;
  all.push_back(rules);
  CaptionOptions prompt;
  prompt.prompt = "a photo of";
  all.push_back(prompt);
  for (const CaptionOptions& options : all) {
    auto cached = cached_->Caption(All(), options);
    auto recomputed = recompute_->Caption(All(), options);
    ASSERT_TRUE(cached.ok()) << cached.status();
    ASSERT_TRUE(recomputed.ok()) << recomputed.status();
    EXPECT_EQ(*cached, *recomputed) << "beams " << options.num_beams;
  }
}

TEST_F(CaptionDecodingTest, TransformerKvCacheMatchesRecompute) {
  const std::string folder = FixtureDir() + "/lm/captioner";
  auto cached = server::LoadCaptioner(folder);
  ASSERT_TRUE(cached.ok()) << cached.status();
  auto recompute = LoadHiding(folder, {"prefill", "step"});
  ASSERT_TRUE(recompute.ok()) << recompute.status();
  ASSERT_TRUE((*cached)->cached_decoding());
  std::vector<image::Image> images;
  for (const char* path : {"/images/photo/dog/dog_0.png", "/images/sketch/cat/cat_1.png",
                           "/images/painting/car/car_2.png", "/images/clipart/tree/tree_0.png"}) {
    images.push_back(Decode(FixtureDir() + path));
  }
  std::vector<const image::Image*> batch;
  for (const image::Image& i : images) batch.push_back(&i);
  CaptionOptions no_repeat = Beams(3);
  no_repeat.no_repeat_ngram_size = 2;
  no_repeat.min_new_tokens = 12;
  for (const CaptionOptions& options : {CaptionOptions{}, Beams(3), no_repeat}) {
    auto a = (*cached)->Caption(batch, options);
    auto b = (*recompute)->Caption(batch, options);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(*a, *b) << "beams " << options.num_beams;
    if (options.min_new_tokens > 0) EXPECT_FALSE((*a)[0].empty());
  }
}

// The decoding cache stays a module-side value: prefill and step go through CallTupleKeep, beams
// reorder it with the module's SelectRows, and only logits [rows, V] are ever copied to the host.
// The captions are the ones the plain cached captioner and the expected strings give.
TEST_F(CaptionDecodingTest, TheCacheStaysInTheModuleAndOnlyLogitsComeToTheHost) {
  const std::string folder = FixtureDir() + "/rules/captioner";
  const int vocab = VocabSize(folder);
  for (const CaptionOptions& options : {CaptionOptions{}, Beams(3)}) {
    auto record = std::make_shared<KeepSpy::Record>();
    auto spied = LoadSpied(folder, record);
    ASSERT_TRUE(spied.ok()) << spied.status();
    auto captions = (*spied)->Caption(All(), options);
    ASSERT_TRUE(captions.ok()) << captions.status();
    auto plain = cached_->Caption(All(), options);
    ASSERT_TRUE(plain.ok()) << plain.status();
    EXPECT_EQ(*captions, *plain) << "beams " << options.num_beams;
    EXPECT_EQ((*captions)[1], options.num_beams == 1 ? "headphones" : "a cat");  // see above

    EXPECT_EQ(record->host_tuple_calls, 0);
    EXPECT_EQ(record->kept_calls["prefill"], 1);
    EXPECT_GT(record->kept_calls["step"], 1);
    if (options.num_beams > 1) {
      EXPECT_GT(record->selects, 0);  // beams fork and reorder rows
    }
    ASSERT_FALSE(record->to_host_shapes.empty());
    for (const std::vector<int64_t>& shape : record->to_host_shapes) {
      ASSERT_EQ(shape.size(), 2u) << "a value that is not logits came to the host";
      EXPECT_EQ(shape[1], vocab);
    }
    for (const models::ModelValuePtr& value : record->kept) {
      EXPECT_EQ(value->device(), "cpu");
      EXPECT_EQ(value->type_name(), "Float");
    }
  }
}

// SelectRows on the module's side gives the rows the host copy has, in the asked order.
TEST_F(CaptionDecodingTest, ModuleSideSelectRowsMatchesTheHostRows) {
  auto module = models::LoadTorchScriptModule(FixtureDir() + "/lm/captioner/model.pt");
  ASSERT_TRUE(module.ok()) << module.status();
  auto manifest = server::ReadManifest(FixtureDir() + "/lm/captioner", models::ModelKind::kCaptioner);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  const models::CaptionerSpec& spec = manifest->captioner;
  const int64_t rows = 3;
  std::vector<float> prefix(rows * spec.prefix_length * spec.prefix_dim);
  for (size_t i = 0; i < prefix.size(); ++i) prefix[i] = std::sin(0.37f * static_cast<float>(i));
  auto out = (*module)->CallTupleKeep(
      "prefill", {models::Tensor::Float({rows, spec.prefix_length, spec.prefix_dim}, prefix),
                  models::Tensor::Int64({rows, 1}, std::vector<int64_t>(rows, spec.bos_token_id))});
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 2u);
  const models::ModelValue& cache = *(*out)[1];
  auto host = (*module)->ToHost(cache);
  ASSERT_TRUE(host.ok()) << host.status();
  const std::vector<size_t> order = {2, 0, 2, 1};
  auto selected = (*module)->SelectRows(cache, order);
  ASSERT_TRUE(selected.ok()) << selected.status();
  EXPECT_EQ((*selected)->shape()[0], 4);
  auto selected_host = (*module)->ToHost(**selected);
  ASSERT_TRUE(selected_host.ok()) << selected_host.status();
  EXPECT_EQ(selected_host->f32, models::decoding::SelectRows(*host, order).f32);

  auto out_of_range = (*module)->SelectRows(cache, {3});
  EXPECT_EQ(out_of_range.status().code(), absl::StatusCode::kInternal) << out_of_range.status();
}

TEST_F(CaptionDecodingTest, BadOptionsNameTheField) {
  struct Case {
    void (*set)(CaptionOptions&);
    const char* message;
  };
  const Case cases[] = {
      {[](CaptionOptions& o) { o.num_beams = 9; }, "options.num_beams: 9 is not in 1..8"},
      {[](CaptionOptions& o) { o.num_beams = 0; }, "options.num_beams: 0 is not in 1..8"},
      {[](CaptionOptions& o) { o.max_new_tokens = 129; }, "options.max_new_tokens: 129"},
      {[](CaptionOptions& o) { o.min_new_tokens = 9; }, "options.min_new_tokens: 9 is not in 0..8"},
      {[](CaptionOptions& o) { o.length_penalty = 4.5f; }, "options.length_penalty: 4.5"},
      {[](CaptionOptions& o) { o.length_penalty = std::nanf(""); }, "options.length_penalty: nan"},
      {[](CaptionOptions& o) { o.no_repeat_ngram_size = 17; }, "options.no_repeat_ngram_size: 17"},
      {[](CaptionOptions& o) { o.repetition_penalty = 0.5f; }, "options.repetition_penalty: 0.5"},
      {[](CaptionOptions& o) { o.repetition_penalty = INFINITY; }, "options.repetition_penalty: inf"},
      {[](CaptionOptions& o) { o.prompt = std::string(513, 'a'); }, "options.prompt: 513 bytes"},
  };
  for (const Case& c : cases) {
    CaptionOptions options;
    c.set(options);
    auto captions = cached_->Caption({&images_[0]}, options);
    EXPECT_EQ(captions.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_TRUE(absl::StrContains(captions.status().message(), c.message))
        << captions.status() << " vs " << c.message;
  }
}

TEST_F(CaptionDecodingTest, APromptNeedsAMergesFile) {
  auto oracle = server::LoadCaptioner(FixtureDir() + "/oracle/captioner");  // vocab only
  ASSERT_TRUE(oracle.ok()) << oracle.status();
  CaptionOptions o;
  o.prompt = "a photo of";
  auto captions = (*oracle)->Caption({&images_[0]}, o);
  EXPECT_EQ(captions.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(captions.status().message(), "options.prompt"))
      << captions.status();
}

TEST_F(CaptionDecodingTest, HalfACacheContractIsRefusedAtLoad) {
  auto only_prefill = LoadHiding(FixtureDir() + "/rules/captioner", {"step"});
  EXPECT_EQ(only_prefill.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(only_prefill.status().message(), "only prefill()"))
      << only_prefill.status();
}

}  // namespace
}  // namespace retrace
