#include "client/mining/pairs_files.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace retrace::mining {
namespace {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

constexpr size_t kMagicBytes = sizeof(kEmbeddingsMagic) - 1;
constexpr size_t kHeaderBytes = kMagicBytes + sizeof(uint32_t);

// The file format is little-endian; so is every machine this builds for (x86-64, arm64).
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the embeddings file is little-endian");

absl::Status FileError(const std::string& path, absl::string_view what) {
  return absl::InternalError(absl::StrCat(path, ": cannot ", what, ": ", std::strerror(errno)));
}

absl::Status Truncate(const std::string& path, uint64_t size) {
  std::error_code ec;
  fs::resize_file(path, size, ec);
  if (ec) return absl::InternalError(absl::StrCat(path, ": cannot truncate: ", ec.message()));
  return absl::OkStatus();
}

// EmbeddingsReader walks the records of an existing embeddings file, for Resume.
class EmbeddingsReader {
 public:
  explicit EmbeddingsReader(const std::string& path) : path_(path), in_(path, std::ios::binary) {}

  // ReadHeader: dim (0 when the file is shorter than a header: nothing was written yet).
  absl::StatusOr<uint32_t> ReadHeader() {
    if (!in_) return absl::FailedPreconditionError(absl::StrCat(path_, ": cannot be read"));
    char magic[kMagicBytes];
    uint32_t dim = 0;
    if (!in_.read(magic, kMagicBytes) || !in_.read(reinterpret_cast<char*>(&dim), sizeof dim)) {
      return 0u;
    }
    if (std::memcmp(magic, kEmbeddingsMagic, kMagicBytes) != 0 || dim == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(path_, ": not a caption-embeddings file (no RTCEMB1 header)"));
    }
    offset_ = kHeaderBytes;
    dim_ = dim;
    return dim;
  }

  // Skip: reads the next record, which must be `id`'s; advances offset().
  absl::Status Skip(const std::string& id, int64_t record_number) {
    uint32_t size = 0;
    std::string got;
    if (in_.read(reinterpret_cast<char*>(&size), sizeof size) && size <= (1u << 20)) {
      got.resize(size);
      in_.read(got.data(), size);
      in_.seekg(static_cast<std::streamoff>(dim_) * sizeof(float), std::ios::cur);
    }
    // seekg past the end does not fail; the size check below catches a short last record.
    const uint64_t end = offset_ + sizeof size + size + uint64_t{dim_} * sizeof(float);
    std::error_code ec;
    if (!in_ || dim_ == 0 || end > fs::file_size(path_, ec)) {
      return absl::FailedPreconditionError(
          absl::StrCat(path_, " holds ", record_number - 1,
                       " complete records, fewer than the pairs file needs (a file of another "
                       "run?); remove both files and start again"));
    }
    if (got != id) {
      return absl::FailedPreconditionError(absl::StrCat(path_, ": record ", record_number,
                                                        " is for '", got,
                                                        "', the pairs file's for '", id, "'"));
    }
    offset_ = end;
    return absl::OkStatus();
  }

  uint64_t offset() const { return offset_; }

 private:
  const std::string path_;
  std::ifstream in_;
  uint32_t dim_ = 0;
  uint64_t offset_ = 0;
};

}  // namespace

std::string PairLine(const MinedPair& pair) {
  ordered_json line;
  line["id"] = pair.id;
  if (!pair.error.empty()) {
    line["error"] = pair.error;
  } else {
    line["caption"] = pair.caption;
    if (pair.nearest) {
      line["nearest"] = *pair.nearest;
      line["nearest_caption"] = pair.nearest_caption;
      line["similarity"] = std::round(pair.similarity * 1e6) / 1e6;
    } else {
      line["nearest"] = nullptr;
      line["nearest_caption"] = nullptr;
      line["similarity"] = nullptr;
    }
  }
  return line.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

absl::StatusOr<std::unique_ptr<PairsWriter>> PairsWriter::Create(
    const std::string& pairs_path, const std::string& embeddings_path) {
  for (const std::string& path : {pairs_path, embeddings_path}) {
    std::error_code ec;
    if (!path.empty() && fs::exists(path, ec)) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, " already exists: resume that run (--resume) or remove the file first"));
    }
  }
  std::unique_ptr<PairsWriter> writer(new PairsWriter(pairs_path, embeddings_path));
  if (absl::Status s = writer->OpenForAppend(); !s.ok()) return s;
  return writer;
}

absl::StatusOr<std::unique_ptr<PairsWriter>> PairsWriter::Resume(const std::string& pairs_path,
                                                                 const std::string& embeddings_path,
                                                                 IdSource& ids) {
  std::error_code ec;
  if (!fs::exists(pairs_path, ec)) {
    return absl::NotFoundError(
        absl::StrCat(pairs_path, ": no such file, so nothing to resume (drop --resume)"));
  }
  std::unique_ptr<PairsWriter> writer(new PairsWriter(pairs_path, embeddings_path));
  std::optional<EmbeddingsReader> embeddings;
  if (!embeddings_path.empty()) {
    if (!fs::exists(embeddings_path, ec)) {
      return absl::FailedPreconditionError(absl::StrCat(
          embeddings_path, ": no such file, but resuming needs the run's embeddings file too"));
    }
    embeddings.emplace(embeddings_path);
    absl::StatusOr<uint32_t> dim = embeddings->ReadHeader();
    if (!dim.ok()) return dim.status();
    writer->dim_ = *dim;
  }

  std::ifstream in(pairs_path, std::ios::binary);
  if (!in) return FileError(pairs_path, "read");
  uint64_t offset = 0;
  int64_t records = 0;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (in.eof()) break;  // no newline: the interrupted run's partial last line
    std::string id;
    bool has_error = false;
    try {
      const ordered_json j = ordered_json::parse(line);
      id = j.at("id").get<std::string>();
      has_error = j.contains("error");
    } catch (const nlohmann::json::exception& e) {
      return absl::DataLossError(absl::StrCat(pairs_path, ":", number, ": ", e.what()));
    }
    absl::StatusOr<std::optional<std::string>> next = ids.Next();
    if (!next.ok()) return next.status();
    if (!next->has_value()) {
      return absl::FailedPreconditionError(
          absl::StrCat(pairs_path, ":", number, " is for '", id, "', but ", ids.description(),
                       " holds only ", number - 1, " ids: resume with the ids of the first run"));
    }
    if (**next != id) {
      return absl::FailedPreconditionError(absl::StrCat(
          pairs_path, ":", number, " is for '", id, "', but id ", number, " of ", ids.description(),
          " is '", **next, "': resume with the ids of the first run"));
    }
    if (embeddings && !has_error) {
      if (absl::Status s = embeddings->Skip(id, ++records); !s.ok()) return s;
    }
    offset += line.size() + 1;
    ++writer->done_;
  }
  if (in.bad()) return FileError(pairs_path, "read");
  in.close();
  if (absl::Status s = Truncate(pairs_path, offset); !s.ok()) return s;
  if (embeddings) {
    if (absl::Status s = Truncate(embeddings_path, embeddings->offset()); !s.ok()) return s;
    if (embeddings->offset() == 0) writer->dim_ = 0;  // the header is written again
  }
  if (absl::Status s = writer->OpenForAppend(); !s.ok()) return s;
  return writer;
}

absl::Status PairsWriter::OpenForAppend() {
  pairs_.open(pairs_path_, std::ios::binary | std::ios::app);
  if (!pairs_) return FileError(pairs_path_, "be written");
  if (!embeddings_path_.empty()) {
    embeddings_.open(embeddings_path_, std::ios::binary | std::ios::app);
    if (!embeddings_) return FileError(embeddings_path_, "be written");
  }
  return absl::OkStatus();
}

absl::Status PairsWriter::Write(const std::vector<MinedPair>& batch) {
  if (embeddings_.is_open()) {
    for (const MinedPair& pair : batch) {
      if (!pair.error.empty()) continue;
      if (dim_ == 0) {
        dim_ = static_cast<uint32_t>(pair.embedding.size());
        embeddings_.write(kEmbeddingsMagic, kMagicBytes);
        embeddings_.write(reinterpret_cast<const char*>(&dim_), sizeof dim_);
      }
      if (pair.embedding.size() != dim_ || dim_ == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("item '", pair.id, "': caption embedding of ", pair.embedding.size(),
                         " values, but ", embeddings_path_, " holds ", dim_));
      }
      const uint32_t size = static_cast<uint32_t>(pair.id.size());
      embeddings_.write(reinterpret_cast<const char*>(&size), sizeof size);
      embeddings_.write(pair.id.data(), size);
      embeddings_.write(reinterpret_cast<const char*>(pair.embedding.data()),
                        static_cast<std::streamsize>(dim_ * sizeof(float)));
    }
    // Records reach the file before the lines that need them (see the banner).
    if (!embeddings_.flush()) return FileError(embeddings_path_, "be written");
  }
  for (const MinedPair& pair : batch) pairs_ << PairLine(pair) << '\n';
  if (!pairs_.flush()) return FileError(pairs_path_, "be written");
  done_ += static_cast<int64_t>(batch.size());
  return absl::OkStatus();
}

}  // namespace retrace::mining
