// pairs_files.h — what `retrace mine-pairs` writes, and how an interrupted run is continued.
//
// The pairs file is JSON Lines, one line per input id, in input order:
//   {"id":"a.jpg","caption":"a dog on a sofa","nearest":"b.jpg",
//    "nearest_caption":"a dog on a bed","similarity":0.912345}
//   {"id":"c.jpg","caption":"a red car","nearest":null,"nearest_caption":null,"similarity":null}
//   {"id":"d.jpg","error":"NOT_FOUND: ..."}
// `nearest` is null when every candidate was left out (the item itself; with
// --exclude-identical-captions, items with the same caption). `similarity` is the cosine of the
// two stored caption embeddings, rounded to 6 decimals. An `error` line is an id the collection
// could not give (e.g. not stored).
//
// The caption-embeddings file (optional) holds every item's stored caption embedding — the
// frozen CLIP text embedding of its caption, which the trainer's CLIP branch needs — in input
// order, for each pairs line without `error`. Little-endian:
//   header   8 bytes "RTCEMB1\n", uint32 dim
//   record   uint32 id_bytes, the id (UTF-8), dim x float32
// tools/train/mined_data.py reads it. It is written before the pairs lines of the same batch
// and flushed first, so a pairs line never refers to a record that is not on disk.
//
// Resuming reads the existing files as a stream: every complete pairs line must be for the
// next id of the source (else FAILED_PRECONDITION naming the line), a partial last line is cut,
// the embeddings file is cut after the record of the last complete line, and writing goes on
// from there — so the result is the file an uninterrupted run writes.
//
// Thread-safety: a PairsWriter is used by one thread.
//
//   auto out = PairsWriter::Create("pairs.jsonl", "emb.bin");
//   RETRACE_RETURN_IF_ERROR((*out)->Write(batch));
#ifndef RETRACE_CLIENT_MINING_PAIRS_FILES_H_
#define RETRACE_CLIENT_MINING_PAIRS_FILES_H_

#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/mining/id_source.h"

namespace retrace::mining {

// kEmbeddingsMagic: the first 8 bytes of a caption-embeddings file.
inline constexpr char kEmbeddingsMagic[] = "RTCEMB1\n";

// MinedPair: one item's line (and, without an error, its embedding record).
struct MinedPair {
  std::string id;
  std::string caption;
  std::optional<std::string> nearest;  // nullopt: no candidate was left
  std::string nearest_caption;
  double similarity = 0;         // meaningful with `nearest`
  std::string error;             // not empty: the item could not be read
  std::vector<float> embedding;  // its caption embedding; empty with `error`
};

class PairsWriter {
 public:
  // Create: new output files. FAILED_PRECONDITION naming a file that already exists (resume it
  // or remove it: an earlier run's work is never overwritten); PERMISSION_DENIED-like errors
  // from the file system name the file. `embeddings_path` empty: no embeddings file.
  static absl::StatusOr<std::unique_ptr<PairsWriter>> Create(const std::string& pairs_path,
                                                             const std::string& embeddings_path);

  // Resume: continues the files of an interrupted run with the same ids. Consumes from `ids`
  // the ids already done, checking each against its line; returns the writer with done()
  // set. NOT_FOUND when the pairs file is missing; FAILED_PRECONDITION when a line is for
  // another id than the source's, or when the embeddings file is missing, holds another dim or
  // fewer records than the pairs file needs; DATA_LOSS for a complete line that is not valid.
  static absl::StatusOr<std::unique_ptr<PairsWriter>> Resume(const std::string& pairs_path,
                                                             const std::string& embeddings_path,
                                                             IdSource& ids);

  // Write: appends `batch` (embeddings first, flushed, then the pairs lines, flushed).
  // INVALID_ARGUMENT when an embedding's size differs from the file's dim; INTERNAL when a
  // write fails.
  absl::Status Write(const std::vector<MinedPair>& batch);

  // done: items written so far, resumed ones included.
  int64_t done() const { return done_; }

 private:
  PairsWriter(std::string pairs_path, std::string embeddings_path)
      : pairs_path_(std::move(pairs_path)), embeddings_path_(std::move(embeddings_path)) {}
  absl::Status OpenForAppend();

  const std::string pairs_path_;
  const std::string embeddings_path_;
  std::ofstream pairs_;
  std::ofstream embeddings_;
  uint32_t dim_ = 0;  // 0: no header written yet
  int64_t done_ = 0;
};

// PairLine: the JSON line of `pair` (no trailing newline).
std::string PairLine(const MinedPair& pair);

}  // namespace retrace::mining

#endif  // RETRACE_CLIENT_MINING_PAIRS_FILES_H_
