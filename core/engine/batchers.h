// batchers.h — the engine's model calls and vector searches, batched across concurrent calls.
//
// With BatchingOptions.enabled, every model method (CLIP image, CLIP text, the image encoder,
// the captioner) and the index searches each have a DynamicBatcher (core/batching): concurrent
// Search and Index calls on the server's request threads hand their inputs over and wait, and
// one batcher thread per model runs them as one batch — full batches on the model, and one
// FAISS call for many queries (a matrix product instead of many vector scans). Search work goes
// in the interactive lane and Index work in the bulk lane, so a search never queues behind
// ingest. Disabled, each call runs directly on the calling thread (the engine's pre-batching
// path, kept for comparison and for embedding the engine where batching does not pay).
//
// Stage timings (stage_observer.h) are reported per model call, with its real batch size.
//
// Thread-safety: every method is safe to call concurrently.
//
//   Batchers batchers(models, options.batching, options.stage_observer);
//   RETRACE_ASSIGN_OR_RETURN(EmbeddingMatrix m, batchers.EncodeImages({&image}, call));
#ifndef RETRACE_CORE_ENGINE_BATCHERS_H_
#define RETRACE_CORE_ENGINE_BATCHERS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/batching/dynamic_batcher.h"
#include "core/engine/engine_types.h"
#include "core/engine/stage_observer.h"
#include "core/image/image.h"
#include "core/index/sharded_index.h"
#include "core/models/captioner.h"
#include "core/models/clip_model.h"
#include "core/models/embeddings.h"
#include "core/models/image_encoder.h"

namespace retrace::engine {

// ModelCall: how one engine call's work is queued.
struct ModelCall {
  batching::Lane lane = batching::Lane::kInteractive;
  absl::Time deadline = absl::InfiniteFuture();
};

class Batchers {
 public:
  // The models are not owned and must outlive this object; image_encoder may be null.
  Batchers(const models::ClipModel* clip, const models::Captioner* captioner,
           const models::ImageEncoder* image_encoder, const BatchingOptions& options,
           StageObserver* observer);
  ~Batchers();
  Batchers(const Batchers&) = delete;
  Batchers& operator=(const Batchers&) = delete;

  // Each returns one row (or caption) per input, in order, or the first error: the model's,
  // DEADLINE_EXCEEDED when the call's deadline passed before its inputs ran, RESOURCE_EXHAUSTED
  // when the model's queue for the call's lane is full. REQUIRES: images decoded; not empty.
  absl::StatusOr<models::EmbeddingMatrix> EncodeImages(
      const std::vector<const image::Image*>& images, const ModelCall& call);
  absl::StatusOr<models::EmbeddingMatrix> EncodeTexts(const std::vector<std::string>& texts,
                                                      const ModelCall& call);
  absl::StatusOr<models::EmbeddingMatrix> EncodeImageFeatures(
      const std::vector<const image::Image*>& images, const ModelCall& call);
  absl::StatusOr<std::vector<std::string>> Caption(const std::vector<const image::Image*>& images,
                                                   const models::CaptionOptions& options,
                                                   const ModelCall& call);

  // Search returns the top k of one query in `index` (ShardedIndex::Search's contract). Queries
  // to the same index are batched; each gets its own k. A filtered query (`filter` not null; not
  // owned) runs at once on the caller's thread: its filter is its own, so it shares no batch.
  absl::StatusOr<std::vector<index::IndexHit>> Search(const index::ShardedIndex& index,
                                                      const float* query, int k,
                                                      const ModelCall& call,
                                                      const index::SearchFilter* filter = nullptr);

  // Depths: each batcher's queue depth per lane, for metrics.
  std::vector<BatcherDepth> Depths() const;

 private:
  struct ImageInput {
    const image::Image* image;
    const models::CaptionOptions* options;  // the captioner's only
  };
  struct SearchInput {
    const index::ShardedIndex* index;
    const float* query;  // dim floats, owned by the waiting caller
    int k;
  };
  using Row = std::vector<float>;
  using ImageBatcher = batching::DynamicBatcher<ImageInput, Row>;

  absl::StatusOr<models::EmbeddingMatrix> RunImages(ImageBatcher* batcher,
                                                    const std::vector<const image::Image*>& images,
                                                    const ModelCall& call, Stage stage,
                                                    const models::ImageEncoder* encoder);

  const models::ClipModel* const clip_;
  const models::Captioner* const captioner_;
  const models::ImageEncoder* const image_encoder_;
  StageObserver* const observer_;
  // Null when batching is disabled (or, for the encoder, when there is none).
  std::unique_ptr<ImageBatcher> clip_image_;
  std::unique_ptr<batching::DynamicBatcher<std::string, Row>> clip_text_;
  std::unique_ptr<ImageBatcher> image_encoder_batcher_;
  std::unique_ptr<batching::DynamicBatcher<ImageInput, std::string>> captioner_batcher_;
  std::unique_ptr<batching::DynamicBatcher<SearchInput, std::vector<index::IndexHit>>> search_;
};

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_BATCHERS_H_
