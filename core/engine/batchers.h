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
// One engine call's image work (RunImageCalls: CLIP image, the image encoder, the captioner on
// the same images) is started on every batcher at once and waited for together, so the models
// overlap instead of running one after the other; disabled, they run one after the other on
// the calling thread. Every image is preprocessed (resized, normalised) once per geometry
// (image::SameGeometry): CLIP and the image encoder, when their manifests share one, get the
// same tensor. The captioner preprocesses its own images.
//
// Stage timings (stage_observer.h) are reported per model call, with its real batch size.
//
// Thread-safety: every method is safe to call concurrently.
//
//   Batchers batchers(models, options.batching, options.stage_observer);
//   RETRACE_ASSIGN_OR_RETURN(EmbeddingMatrix m, batchers.EncodeImages({&image}, call));
//   ImageCalls both;  both.clip_image = both.features = true;
//   ImageResults r = batchers.RunImageCalls({&image}, both, call);  // r.clip_image, r.features
#ifndef RETRACE_CORE_ENGINE_BATCHERS_H_
#define RETRACE_CORE_ENGINE_BATCHERS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/batching/dynamic_batcher.h"
#include "core/engine/engine_types.h"
#include "core/engine/stage_observer.h"
#include "core/image/image.h"
#include "core/image/preprocess.h"
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

// ImageCalls: the model calls one engine call makes on the same images, run by RunImageCalls.
struct ImageCalls {
  bool clip_image = false;  // CLIP image embeddings of every image
  bool features = false;    // image-encoder embeddings of every image
  // Captions of these images (any of the call's images, or others), with these options;
  // none when caption_options is null or caption_images is empty. Not owned.
  const models::CaptionOptions* caption_options = nullptr;
  std::vector<const image::Image*> caption_images;
};

// ImageResults: each call's result, or its error, as the one-call method (EncodeImages,
// EncodeImageFeatures, Caption) would return it; a call not asked for is OK and empty.
struct ImageResults {
  absl::StatusOr<models::EmbeddingMatrix> clip_image = models::EmbeddingMatrix();
  absl::StatusOr<models::EmbeddingMatrix> features = models::EmbeddingMatrix();
  absl::StatusOr<std::vector<std::string>> captions = std::vector<std::string>();
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

  // RunImageCalls runs `calls` on `images` (REQUIRES: decoded; not empty) and returns when every
  // one has finished: with batching, all are queued at once and overlap; without, they run one
  // after the other on this thread. The results are as from the one-call methods (same errors,
  // each on its own: one call's failure does not cancel the others) and bit-identical to them:
  // preprocessing once per geometry makes the tensor each model would have made itself.
  ImageResults RunImageCalls(const std::vector<const image::Image*>& images,
                             const ImageCalls& calls, const ModelCall& call);

  // Search returns the top k of one query in `index` (ShardedIndex::Search's contract). Queries
  // to the same index are batched; each gets its own k. A filtered query (`filter` not null; not
  // owned) runs at once on the caller's thread: its filter is its own, so it shares no batch.
  absl::StatusOr<std::vector<index::IndexHit>> Search(const index::ShardedIndex& index,
                                                      const float* query, int k,
                                                      const ModelCall& call,
                                                      const index::SearchFilter* filter = nullptr);

  // Depths: each batcher's queue depth per lane, for metrics.
  std::vector<BatcherDepth> Depths() const;

  // TensorsPreprocessed: image tensors made for CLIP and the image encoder since construction
  // (one per image and distinct geometry of a call), for tests.
  int64_t TensorsPreprocessed() const { return tensors_preprocessed_.load(); }

 private:
  // Pixels: one image's preprocessed tensors, made once per geometry (defined in batchers.cc).
  class Pixels;
  struct ImageInput {
    const image::Image* image;
    const models::CaptionOptions* options;  // the captioner's only
    Pixels* pixels;                         // CLIP's and the image encoder's only; not owned
  };
  struct SearchInput {
    const index::ShardedIndex* index;
    const float* query;  // dim floats, owned by the waiting caller
    int k;
  };
  using Row = std::vector<float>;
  using ImageBatcher = batching::DynamicBatcher<ImageInput, Row>;

  // EncodeBatch runs CLIP image (encoder null) or `encoder` on the inputs' shared tensors.
  absl::StatusOr<models::EmbeddingMatrix> EncodeBatch(const std::vector<ImageInput>& inputs,
                                                      const models::ImageEncoder* encoder);
  // ImageInputs: one input per image, each with its Pixels for the geometries `specs` (which
  // the caller keeps alive until every call on them has finished).
  static std::vector<ImageInput> ImageInputs(const std::vector<const image::Image*>& images,
                                             const std::vector<const image::PreprocessSpec*>& specs,
                                             std::vector<std::unique_ptr<Pixels>>& pixels);
  // CaptionInputs: one captioner input per image, all with `options` (not owned).
  static std::vector<ImageInput> CaptionInputs(const std::vector<const image::Image*>& images,
                                               const models::CaptionOptions& options);
  absl::StatusOr<models::EmbeddingMatrix> RunImages(ImageBatcher* batcher,
                                                    std::vector<ImageInput> inputs,
                                                    const ModelCall& call, Stage stage,
                                                    const models::ImageEncoder* encoder);

  const models::ClipModel* const clip_;
  const models::Captioner* const captioner_;
  const models::ImageEncoder* const image_encoder_;
  StageObserver* const observer_;
  std::atomic<int64_t> tensors_preprocessed_{0};
  // Null when batching is disabled (or, for the encoder, when there is none).
  std::unique_ptr<ImageBatcher> clip_image_;
  std::unique_ptr<batching::DynamicBatcher<std::string, Row>> clip_text_;
  std::unique_ptr<ImageBatcher> image_encoder_batcher_;
  std::unique_ptr<batching::DynamicBatcher<ImageInput, std::string>> captioner_batcher_;
  std::unique_ptr<batching::DynamicBatcher<SearchInput, std::vector<index::IndexHit>>> search_;
};

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_BATCHERS_H_
