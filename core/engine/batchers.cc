#include "core/engine/batchers.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/common/status_macros.h"
#include "core/models/tensor.h"

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

absl::Status NoImageEncoder() { return absl::FailedPreconditionError("this server has no image encoder"); }

// Pending: one batcher call, started with Submit and waited for with Wait. The destructor waits
// as well, so the call's `done` never writes into a Pending that is gone, however the caller
// leaves (every started call is finished before the inputs it points to may be freed).
template <typename Out>
class Pending {
 public:
  Pending() = default;
  ~Pending() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&set_));
  }
  Pending(const Pending&) = delete;
  Pending& operator=(const Pending&) = delete;

  // Start queues the inputs; a refusal (a full queue) is the result at once. Start once.
  template <typename In>
  void Start(DynamicBatcher<In, Out>& batcher, std::vector<In> inputs, const ModelCall& call,
             std::string key = "") {
    {
      absl::MutexLock lock(&mu_);
      set_ = false;
    }
    absl::Status queued = batcher.Submit(
        std::move(inputs), call.lane, call.deadline, std::move(key),
        [this](absl::StatusOr<std::vector<Out>> result) { Set(std::move(result)); });
    if (!queued.ok()) Set(std::move(queued));
  }

  // Wait returns the call's outputs or its error. REQUIRES: started; called once.
  absl::StatusOr<std::vector<Out>> Wait() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&set_));
    return std::move(result_);
  }

 private:
  void Set(absl::StatusOr<std::vector<Out>> result) {
    absl::MutexLock lock(&mu_);
    result_ = std::move(result);
    set_ = true;
  }

  absl::Mutex mu_;
  bool set_ ABSL_GUARDED_BY(mu_) = true;  // nothing started: nothing to wait for
  absl::StatusOr<std::vector<Out>> result_ ABSL_GUARDED_BY(mu_);
};

// CaptionKey: inputs decoded with different options cannot share a batch.
std::string CaptionKey(const models::CaptionOptions& o) {
  return absl::StrCat(o.max_new_tokens, "/", o.min_new_tokens, "/", o.num_beams, "/",
                      o.length_penalty, "/", o.no_repeat_ngram_size, "/", o.repetition_penalty,
                      "/", o.prompt);
}

}  // namespace

// Pixels: one image's model tensors, one per geometry that the call's models use. The first
// model thread to need a geometry makes it (another that needs it meanwhile waits, then copies
// it); it is freed once every model that uses it has copied it. The list of geometries is
// fixed at construction, so only each entry needs a lock.
class Batchers::Pixels {
 public:
  // `specs`: the geometry of every model call that will read this image (repeats allowed).
  Pixels(const image::Image* image, const std::vector<const image::PreprocessSpec*>& specs)
      : image_(image) {
    for (const image::PreprocessSpec* spec : specs) {
      Entry* entry = Find(*spec);
      if (entry == nullptr) {
        entries_.push_back(std::make_unique<Entry>());
        entry = entries_.back().get();
        entry->spec = *spec;
      }
      absl::MutexLock lock(&entry->mu);
      ++entry->readers;
    }
  }

  // Into writes the image's tensor for `spec` (3 x size x size floats) to `out`, making it if no
  // model has yet (and counting that in `made`). A spec not given at construction is made for
  // this reader alone.
  void Into(const image::PreprocessSpec& spec, float* out, std::atomic<int64_t>& made) {
    Entry* entry = Find(spec);
    if (entry == nullptr) {
      image::PreprocessInto(*image_, spec, out);
      ++made;
      return;
    }
    absl::MutexLock lock(&entry->mu);
    if (!entry->made) {
      entry->tensor = image::Preprocess(*image_, spec);
      entry->made = true;
      ++made;
    }
    std::copy(entry->tensor.begin(), entry->tensor.end(), out);
    if (--entry->readers <= 0) std::vector<float>().swap(entry->tensor);
  }

 private:
  struct Entry {
    image::PreprocessSpec spec;
    absl::Mutex mu;
    int readers ABSL_GUARDED_BY(mu) = 0;
    bool made ABSL_GUARDED_BY(mu) = false;
    std::vector<float> tensor ABSL_GUARDED_BY(mu);
  };

  Entry* Find(const image::PreprocessSpec& spec) const {
    for (const auto& entry : entries_) {
      if (image::SameGeometry(entry->spec, spec)) return entry.get();
    }
    return nullptr;
  }

  const image::Image* const image_;
  std::vector<std::unique_ptr<Entry>> entries_;
};

Batchers::Batchers(const models::ClipModel* clip, const models::Captioner* captioner,
                   const models::ImageEncoder* image_encoder, const BatchingOptions& options,
                   StageObserver* observer)
    : clip_(clip), captioner_(captioner), image_encoder_(image_encoder), observer_(observer) {
  if (!options.enabled) return;
  auto images = [this](const models::ImageEncoder* encoder, Stage stage) {
    return [this, encoder, stage](const std::vector<ImageInput>& inputs) {
      ScopedStage timer(observer_, stage, static_cast<int>(inputs.size()));
      return Rows(EncodeBatch(inputs, encoder));
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

absl::StatusOr<models::EmbeddingMatrix> Batchers::EncodeBatch(
    const std::vector<ImageInput>& inputs, const models::ImageEncoder* encoder) {
  const image::PreprocessSpec& spec = encoder ? encoder->manifest().image : clip_->manifest().image;
  const int64_t rows = static_cast<int64_t>(inputs.size());
  const int64_t per_image = 3LL * spec.size * spec.size;
  std::vector<float> data(rows * per_image);
  for (int64_t i = 0; i < rows; ++i) {
    inputs[i].pixels->Into(spec, data.data() + i * per_image, tensors_preprocessed_);
  }
  models::Tensor pixels = models::Tensor::Float({rows, 3, spec.size, spec.size}, std::move(data));
  return encoder ? encoder->EncodePreprocessed(std::move(pixels))
                 : clip_->EncodePreprocessed(std::move(pixels));
}

std::vector<Batchers::ImageInput> Batchers::ImageInputs(
    const std::vector<const image::Image*>& images,
    const std::vector<const image::PreprocessSpec*>& specs,
    std::vector<std::unique_ptr<Pixels>>& pixels) {
  std::vector<ImageInput> inputs;
  inputs.reserve(images.size());
  for (const image::Image* image : images) {
    pixels.push_back(std::make_unique<Pixels>(image, specs));
    inputs.push_back({image, nullptr, pixels.back().get()});
  }
  return inputs;
}

absl::StatusOr<models::EmbeddingMatrix> Batchers::RunImages(ImageBatcher* batcher,
                                                            std::vector<ImageInput> inputs,
                                                            const ModelCall& call, Stage stage,
                                                            const models::ImageEncoder* encoder) {
  if (batcher == nullptr) {
    ScopedStage timer(observer_, stage, static_cast<int>(inputs.size()));
    return EncodeBatch(inputs, encoder);
  }
  return Matrix(batcher->Run(std::move(inputs), call.lane, call.deadline),
                encoder ? encoder->dim() : clip_->dim());
}

absl::StatusOr<models::EmbeddingMatrix> Batchers::EncodeImages(
    const std::vector<const image::Image*>& images, const ModelCall& call) {
  std::vector<std::unique_ptr<Pixels>> pixels;
  return RunImages(clip_image_.get(), ImageInputs(images, {&clip_->manifest().image}, pixels),
                   call, Stage::kEmbedImage, nullptr);
}

absl::StatusOr<models::EmbeddingMatrix> Batchers::EncodeImageFeatures(
    const std::vector<const image::Image*>& images, const ModelCall& call) {
  if (image_encoder_ == nullptr) return NoImageEncoder();
  std::vector<std::unique_ptr<Pixels>> pixels;
  return RunImages(image_encoder_batcher_.get(),
                   ImageInputs(images, {&image_encoder_->manifest().image}, pixels), call,
                   Stage::kEmbedImage, image_encoder_);
}

ImageResults Batchers::RunImageCalls(const std::vector<const image::Image*>& images,
                                     const ImageCalls& calls, const ModelCall& call) {
  ImageResults results;
  const bool features = calls.features && image_encoder_ != nullptr;
  if (calls.features && !features) results.features = NoImageEncoder();
  const bool caption = calls.caption_options != nullptr && !calls.caption_images.empty();
  std::vector<const image::PreprocessSpec*> specs;
  if (calls.clip_image) specs.push_back(&clip_->manifest().image);
  if (features) specs.push_back(&image_encoder_->manifest().image);
  // Declared before the Pending calls, so freed after every one of them has finished.
  std::vector<std::unique_ptr<Pixels>> pixels;
  std::vector<ImageInput> inputs = ImageInputs(images, specs, pixels);
  if (clip_image_ == nullptr) {  // batching disabled: one after the other, on this thread
    if (calls.clip_image) {
      results.clip_image = RunImages(nullptr, inputs, call, Stage::kEmbedImage, nullptr);
    }
    if (features) {
      results.features = RunImages(nullptr, inputs, call, Stage::kEmbedImage, image_encoder_);
    }
    if (caption) results.captions = Caption(calls.caption_images, *calls.caption_options, call);
    return results;
  }
  Pending<Row> clip_rows, feature_rows;
  Pending<std::string> captions;
  if (calls.clip_image) clip_rows.Start(*clip_image_, inputs, call);
  if (features) feature_rows.Start(*image_encoder_batcher_, inputs, call);
  if (caption) {
    captions.Start(*captioner_batcher_,
                   CaptionInputs(calls.caption_images, *calls.caption_options), call,
                   CaptionKey(*calls.caption_options));
  }
  if (calls.clip_image) results.clip_image = Matrix(clip_rows.Wait(), clip_->dim());
  if (features) results.features = Matrix(feature_rows.Wait(), image_encoder_->dim());
  if (caption) results.captions = captions.Wait();
  return results;
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
  return captioner_batcher_->Run(CaptionInputs(images, options), call.lane, call.deadline,
                                 CaptionKey(options));
}

std::vector<Batchers::ImageInput> Batchers::CaptionInputs(
    const std::vector<const image::Image*>& images, const models::CaptionOptions& options) {
  std::vector<ImageInput> inputs;
  inputs.reserve(images.size());
  for (const image::Image* image : images) inputs.push_back({image, &options, nullptr});
  return inputs;
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
