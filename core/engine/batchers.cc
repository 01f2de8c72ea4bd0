#include "core/engine/batchers.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"

namespace retrace::engine {
namespace {

using batching::BatcherOptions;
using batching::DynamicBatcher;
using batching::Lane;

BatcherOptions Named(BatcherOptions options, const char* name) {
  if (options.name.empty()) options.name = name;
  return options;
}

// Rows splits a model's output matrix into one row per input.
absl::StatusOr<std::vector<std::vector<float>>> Rows(absl::StatusOr<models::EmbeddingMatrix> m) {
  if (!m.ok()) return m.status();
  std::vector<std::vector<float>> rows;
  rows.reserve(m->rows);
  for (size_t i = 0; i < m->rows; ++i) rows.push_back(m->RowVector(i));
  return rows;
}

absl::StatusOr<models::EmbeddingMatrix> Matrix(absl::StatusOr<std::vector<std::vector<float>>> rows,
                                               int dim) {
  if (!rows.ok()) return rows.status();
  models::EmbeddingMatrix m(rows->size(), dim);
  for (size_t i = 0; i < rows->size(); ++i) {
    if ((*rows)[i].size() != static_cast<size_t>(dim)) {
      return absl::InternalError(absl::StrCat("a batched row has ", (*rows)[i].size(),
                                              " values; expected ", dim));
    }
    std::copy((*rows)[i].begin(), (*rows)[i].end(), m.Row(i));
  }
  return m;
}

// CaptionKey: inputs decoded with different options cannot share a batch.
std::string CaptionKey(const models::CaptionOptions& o) {
  return absl::StrCat(o.max_new_tokens, "/", o.min_new_tokens, "/", o.num_beams, "/",
                      o.length_penalty, "/", o.no_repeat_ngram_size, "/", o.repetition_penalty,
                      "/", o.prompt);
}

}  // namespace

Batchers::Batchers(const models::ClipModel* clip, const models::Captioner* captioner,
                   const models::ImageEncoder* image_encoder, const BatchingOptions& options,
                   StageObserver* observer)
    : clip_(clip), captioner_(captioner), image_encoder_(image_encoder), observer_(observer) {
  if (!options.enabled) return;
  auto images = [this](const models::ImageEncoder* encoder, Stage stage) {
    return [this, encoder, stage](const std::vector<ImageInput>& inputs) {
      std::vector<const image::Image*> batch;
      for (const ImageInput& in : inputs) batch.push_back(in.image);
      ScopedStage timer(observer_, stage, static_cast<int>(batch.size()));
      return Rows(encoder ? encoder->EncodeImages(batch) : clip_->EncodeImages(batch));
    };
  };
  clip_image_ = std::make_unique<ImageBatcher>(Named(options.clip_image, "CLIP image"),
                                               images(nullptr, Stage::kEmbedImage));
  clip_text_ = std::make_unique<DynamicBatcher<std::string, Row>>(
      Named(options.clip_text, "CLIP text"), [this](const std::vector<std::string>& texts) {
        ScopedStage timer(observer_, Stage::kEmbedText, static_cast<int>(texts.size()));
        return Rows(clip_->EncodeTexts(texts));
      });
  if (image_encoder_ != nullptr) {
    image_encoder_batcher_ = std::make_unique<ImageBatcher>(
        Named(options.image_encoder, "image encoder"),
        images(image_encoder_, Stage::kEmbedImage));
  }
  captioner_batcher_ = std::make_unique<DynamicBatcher<ImageInput, std::string>>(
      Named(options.captioner, "captioner"), [this](const std::vector<ImageInput>& inputs) {
        std::vector<const image::Image*> batch;
        for (const ImageInput& in : inputs) batch.push_back(in.image);
        ScopedStage timer(observer_, Stage::kCaption, static_cast<int>(batch.size()));
        // One key per batch, so every input carries the same options.
        return captioner_->Caption(batch, *inputs.front().options);
      });
  search_ = std::make_unique<DynamicBatcher<SearchInput, std::vector<index::IndexHit>>>(
      Named(options.search, "vector search"),
      [this](const std::vector<SearchInput>& inputs)
          -> absl::StatusOr<std::vector<std::vector<index::IndexHit>>> {
        // One key per index, so one FAISS call: every query at the largest k, then each cut to
        // its own (the top k of a top-K list are the top k).
        const index::ShardedIndex& index = *inputs.front().index;
        const size_t dim = static_cast<size_t>(index.options().dim);
        int k = 0;
        std::vector<float> queries(inputs.size() * dim);
        for (size_t i = 0; i < inputs.size(); ++i) {
          k = std::max(k, inputs[i].k);
          std::copy(inputs[i].query, inputs[i].query + dim, queries.data() + i * dim);
        }
        ScopedStage timer(observer_, Stage::kSearch, static_cast<int>(inputs.size()));
        RETRACE_ASSIGN_OR_RETURN(std::vector<std::vector<index::IndexHit>> found,
                                 index.Search(queries.data(), inputs.size(), k));
        for (size_t i = 0; i < inputs.size() && i < found.size(); ++i) {
          if (found[i].size() > static_cast<size_t>(inputs[i].k)) found[i].resize(inputs[i].k);
        }
        return found;
      });
}

// The batchers (declared last) stop first: each runs what is queued before the models go.
Batchers::~Batchers() = default;

absl::StatusOr<models::EmbeddingMatrix> Batchers::RunImages(
    ImageBatcher* batcher, const std::vector<const image::Image*>& images, const ModelCall& call,
    Stage stage, const models::ImageEncoder* encoder) {
  const int dim = encoder ? encoder->dim() : clip_->dim();
  if (batcher == nullptr) {
    ScopedStage timer(observer_, stage, static_cast<int>(images.size()));
    return encoder ? encoder->EncodeImages(images) : clip_->EncodeImages(images);
  }
  std::vector<ImageInput> inputs;
  inputs.reserve(images.size());
  for (const image::Image* image : images) inputs.push_back({image, nullptr});
  return Matrix(batcher->Run(std::move(inputs), call.lane, call.deadline), dim);
}

absl::StatusOr<models::EmbeddingMatrix> Batchers::EncodeImages(
    const std::vector<const image::Image*>& images, const ModelCall& call) {
  return RunImages(clip_image_.get(), images, call, Stage::kEmbedImage, nullptr);
}

absl::StatusOr<models::EmbeddingMatrix> Batchers::EncodeImageFeatures(
    const std::vector<const image::Image*>& images, const ModelCall& call) {
  if (image_encoder_ == nullptr) {
    return absl::FailedPreconditionError("this server has no image encoder");
  }
  return RunImages(image_encoder_batcher_.get(), images, call, Stage::kEmbedImage,
                   image_encoder_);
}

absl::StatusOr<models::EmbeddingMatrix> Batchers::EncodeTexts(const std::vector<std::string>& texts,
                                                              const ModelCall& call) {
  if (clip_text_ == nullptr) {
    ScopedStage timer(observer_, Stage::kEmbedText, static_cast<int>(texts.size()));
    return clip_->EncodeTexts(texts);
  }
  return Matrix(clip_text_->Run(texts, call.lane, call.deadline), clip_->dim());
}

absl::StatusOr<std::vector<std::string>> Batchers::Caption(
    const std::vector<const image::Image*>& images, const models::CaptionOptions& options,
    const ModelCall& call) {
  if (captioner_batcher_ == nullptr) {
    ScopedStage timer(observer_, Stage::kCaption, static_cast<int>(images.size()));
    return captioner_->Caption(images, options);
  }
  std::vector<ImageInput> inputs;
  inputs.reserve(images.size());
  for (const image::Image* image : images) inputs.push_back({image, &options});
  return captioner_batcher_->Run(std::move(inputs), call.lane, call.deadline, CaptionKey(options));
}

absl::StatusOr<std::vector<index::IndexHit>> Batchers::Search(const index::ShardedIndex& index,
                                                              const float* query, int k,
                                                              const ModelCall& call,
                                                              const index::SearchFilter* filter) {
  // A query that is not finite would fail the whole batch in FAISS; it fails alone here.
  for (int i = 0; i < index.options().dim; ++i) {
    if (!std::isfinite(query[i])) {
      return absl::InternalError("the query vector has a non-finite value");
    }
  }
  if (search_ == nullptr || filter != nullptr) {
    ScopedStage timer(observer_, Stage::kSearch, 1);
    RETRACE_ASSIGN_OR_RETURN(std::vector<std::vector<index::IndexHit>> found,
                             index.Search(query, 1, k, filter));
    return std::move(found[0]);
  }
  RETRACE_ASSIGN_OR_RETURN(
      std::vector<std::vector<index::IndexHit>> found,
      search_->Run({SearchInput{&index, query, k}}, call.lane, call.deadline,
                   absl::StrCat(reinterpret_cast<uintptr_t>(&index))));
  return std::move(found[0]);
}

std::vector<BatcherDepth> Batchers::Depths() const {
  std::vector<BatcherDepth> depths;
  auto add = [&depths](const auto& batcher) {
    if (batcher == nullptr) return;
    for (Lane lane : {Lane::kInteractive, Lane::kBulk}) {
      depths.push_back({batcher->options().name, lane, batcher->QueueDepth(lane)});
    }
  };
  add(clip_image_);
  add(clip_text_);
  add(image_encoder_batcher_);
  add(captioner_batcher_);
  add(search_);
  return depths;
}

}  // namespace retrace::engine
