// stage_observer.h — where the engine reports how long each stage of a call took.
//
// The engine times decode, captioning, the embedding models, the vector search, re-ranking and
// the store write, and tells a StageObserver (the server's Prometheus metrics) each duration with
// its batch size. core/ stays free of any metrics library.
//
// Thread-safety: Observe is called concurrently from every thread that runs engine work, so an
// implementation must be thread-safe.
//
//   class Metrics : public StageObserver { void Observe(Stage s, double sec, int n) override; };
//   options.stage_observer = &metrics;
#ifndef RETRACE_CORE_ENGINE_STAGE_OBSERVER_H_
#define RETRACE_CORE_ENGINE_STAGE_OBSERVER_H_

#include <chrono>

namespace retrace::engine {

enum class Stage {
  kDecode,      // one image: header checks and decode
  kCaption,     // a captioner batch
  kEmbedImage,  // a CLIP or image-encoder image batch
  kEmbedText,   // a CLIP text batch
  kSearch,      // one vector-index search
  kRerank,      // provenance: reading N candidates, scoring P and P', re-ranking
  kStore,       // one durable store write and index update
};
inline constexpr int kStageCount = 7;

inline const char* StageName(Stage stage) {
  switch (stage) {
    case Stage::kDecode:
      return "decode";
    case Stage::kCaption:
      return "caption";
    case Stage::kEmbedImage:
      return "embed_image";
    case Stage::kEmbedText:
      return "embed_text";
    case Stage::kSearch:
      return "search";
    case Stage::kRerank:
      return "rerank";
    case Stage::kStore:
      return "store";
  }
  return "unknown";
}

class StageObserver {
 public:
  virtual ~StageObserver() = default;
  // Observe: `stage` took `seconds` for `batch_size` items (1 for a single image or query).
  virtual void Observe(Stage stage, double seconds, int batch_size) = 0;
};

// ScopedStage reports the time from its construction to its destruction; a no-op without an
// observer.
class ScopedStage {
 public:
  ScopedStage(StageObserver* observer, Stage stage, int batch_size)
      : observer_(observer),
        stage_(stage),
        batch_size_(batch_size),
        start_(observer ? std::chrono::steady_clock::now()
                        : std::chrono::steady_clock::time_point()) {}
  ~ScopedStage() {
    if (observer_ == nullptr) return;
    observer_->Observe(
        stage_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(),
        batch_size_);
  }
  ScopedStage(const ScopedStage&) = delete;
  ScopedStage& operator=(const ScopedStage&) = delete;

 private:
  StageObserver* const observer_;
  const Stage stage_;
  const int batch_size_;
  const std::chrono::steady_clock::time_point start_;
};

}  // namespace retrace::engine

#endif  // RETRACE_CORE_ENGINE_STAGE_OBSERVER_H_
