// ShardedIndex::SaveSnapshot and ShardedIndex::LoadSnapshot: the files described in
// sharded_index.h. The manifest, little-endian, length-prefixed (internal/byte_codec.h):
//
//   "RTXMAN01"                          8-byte magic; the digits are the format version
//   u64 generation                      G in the file names
//   i64 sequence                        the store sequence the index includes
//   bytes tag                           u64 length + the caller's bytes
//   u32 dim, u32 shards, bytes factory  the options that must match on load
//   u32 file count, then per file:      bytes name, u64 size, u32 crc32
//   u32 crc32                           of every byte before it
//
// Files are listed shard by shard (.faiss then .ids), then the prototype when there is one.
#include <faiss/Index.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/index/internal/byte_codec.h"
#include "core/index/internal/faiss_index.h"
#include "core/common/files.h"
#include "core/index/internal/shard.h"
#include "core/index/sharded_index.h"

namespace retrace::index {
namespace {

using internal::ByteReader;
using internal::ByteWriter;
using internal::Shard;

constexpr std::string_view kManifestMagic = "RTXMAN01";
constexpr char kManifestName[] = "MANIFEST";
// kFilePrefix starts the name of every data file a snapshot writes.
constexpr std::string_view kFilePrefix = "index-";
// kPrefix is kFilePrefix for absl::StrCat, which takes absl::string_view (not std's, here).
const char* const kPrefix = kFilePrefix.data();

struct FileEntry {
  std::string name;
  uint64_t size = 0;
  uint32_t crc = 0;
};

struct Manifest {
  uint64_t generation = 0;
  int64_t sequence = 0;
  std::string tag;
  uint32_t dim = 0;
  uint32_t shards = 0;
  std::string factory;
  std::vector<FileEntry> files;
};

std::string Join(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? absl::StrCat(dir, name) : absl::StrCat(dir, "/", name);
}

std::string ShardFileName(uint64_t generation, size_t shard, const char* extension) {
  return absl::StrCat(kPrefix, absl::Dec(generation, absl::kZeroPad8), "-shard-",
                      absl::Dec(shard, absl::kZeroPad3), ".", extension);
}

std::string PrototypeFileName(uint64_t generation) {
  return absl::StrCat(kPrefix, absl::Dec(generation, absl::kZeroPad8), "-prototype.faiss");
}

// GenerationOf returns G of a file named "index-<G>-..." (finished or temporary), else 0.
uint64_t GenerationOf(std::string_view name) {
  if (name.substr(0, kFilePrefix.size()) != kFilePrefix) return 0;
  uint64_t generation = 0;
  for (char c : name.substr(kFilePrefix.size())) {
    if (!std::isdigit(static_cast<unsigned char>(c))) break;
    generation = generation * 10 + static_cast<uint64_t>(c - '0');
  }
  return generation;
}

// IsSnapshotFile reports whether SaveSnapshot may have written `name` (so may delete it).
bool IsSnapshotFile(std::string_view name) {
  return name.substr(0, kFilePrefix.size()) == kFilePrefix ||
         name == std::string(kManifestName) + std::string(files::kTempSuffix);
}

std::string EncodeManifest(const Manifest& manifest) {
  ByteWriter out;
  out.Raw(kManifestMagic);
  out.U64(manifest.generation);
  out.I64(manifest.sequence);
  out.Bytes(manifest.tag);
  out.U32(manifest.dim);
  out.U32(manifest.shards);
  out.Bytes(manifest.factory);
  out.U32(static_cast<uint32_t>(manifest.files.size()));
  for (const FileEntry& file : manifest.files) {
    out.Bytes(file.name);
    out.U64(file.size);
    out.U32(file.crc);
  }
  out.U32(files::Crc32(out.view()));
  return out.Release();
}

// DecodeManifest parses EncodeManifest's output; the error is the reason, for DATA_LOSS.
absl::StatusOr<Manifest> DecodeManifest(std::string_view bytes) {
  if (bytes.size() < kManifestMagic.size() + 4 ||
      bytes.substr(0, kManifestMagic.size()) != kManifestMagic) {
    return absl::DataLossError(
        absl::StrCat("not a retrace index manifest (", bytes.size(), " bytes; truncated?)"));
  }
  const std::string_view body = bytes.substr(0, bytes.size() - 4);
  uint32_t stored_crc = 0;
  ByteReader(bytes.substr(body.size())).U32(&stored_crc);
  if (files::Crc32(body) != stored_crc) {
    return absl::DataLossError("checksum mismatch (truncated or corrupted)");
  }
  ByteReader in(body.substr(kManifestMagic.size()));
  Manifest manifest;
  std::string_view tag, factory;
  uint32_t files = 0;
  if (!in.U64(&manifest.generation) || !in.I64(&manifest.sequence) || !in.Bytes(&tag) ||
      !in.U32(&manifest.dim) || !in.U32(&manifest.shards) || !in.Bytes(&factory) ||
      !in.U32(&files)) {
    return absl::DataLossError("malformed header");
  }
  manifest.tag = std::string(tag);
  manifest.factory = std::string(factory);
  for (uint32_t i = 0; i < files; ++i) {
    FileEntry entry;
    std::string_view name;
    if (!in.Bytes(&name) || !in.U64(&entry.size) || !in.U32(&entry.crc)) {
      return absl::DataLossError(absl::StrCat("malformed entry for file ", i));
    }
    entry.name = std::string(name);
    manifest.files.push_back(std::move(entry));
  }
  if (in.remaining() != 0) return absl::DataLossError("unexpected bytes after the file list");
  return manifest;
}

absl::Status MissingListedFile(const std::string& path) {
  return absl::DataLossError(absl::StrCat(path, ": missing, but the manifest names it"));
}

// CheckAgainstEntry compares the size and CRC-32 of what `path` holds with its manifest entry.
absl::Status CheckAgainstEntry(const std::string& path, const FileEntry& entry, uint64_t size,
                               uint32_t crc) {
  if (size != entry.size) {
    return absl::DataLossError(absl::StrCat(path, ": ", size, " bytes but the manifest says ",
                                            entry.size, " (truncated or overwritten)"));
  }
  if (crc != entry.crc) {
    return absl::DataLossError(absl::StrCat(path, ": checksum mismatch (CRC-32 ", absl::Hex(crc),
                                            ", the manifest says ", absl::Hex(entry.crc), ")"));
  }
  return absl::OkStatus();
}

// ReadListedFile reads a file the manifest names and checks its size and checksum.
absl::StatusOr<std::vector<uint8_t>> ReadListedFile(const std::string& dir,
                                                    const FileEntry& entry) {
  const std::string path = Join(dir, entry.name);
  absl::StatusOr<std::vector<uint8_t>> bytes = files::ReadWholeFile(path);
  if (absl::IsNotFound(bytes.status())) return MissingListedFile(path);
  if (!bytes.ok()) return bytes.status();
  const uint32_t crc = files::Crc32(
      std::string_view(reinterpret_cast<const char*>(bytes->data()), bytes->size()));
  RETRACE_RETURN_IF_ERROR(CheckAgainstEntry(path, entry, bytes->size(), crc));
  return bytes;
}

// CheckListedFile checks a file the manifest names as ReadListedFile does, reading it in chunks
// so that checking a file to be memory-mapped does not hold it in memory. Returns its path.
absl::StatusOr<std::string> CheckListedFile(const std::string& dir, const FileEntry& entry) {
  constexpr size_t kChunkBytes = size_t{4} << 20;
  const std::string path = Join(dir, entry.name);
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) {
    if (errno == ENOENT) return MissingListedFile(path);
    return absl::UnavailableError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  std::vector<char> chunk(kChunkBytes);
  uLong crc = ::crc32(0L, Z_NULL, 0);
  uint64_t size = 0;
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    const auto got = static_cast<size_t>(in.gcount());
    crc = ::crc32(crc, reinterpret_cast<const Bytef*>(chunk.data()), static_cast<uInt>(got));
    size += got;
  }
  if (in.bad()) return absl::UnavailableError(absl::StrCat(path, ": read failed"));
  RETRACE_RETURN_IF_ERROR(CheckAgainstEntry(path, entry, size, static_cast<uint32_t>(crc)));
  return path;
}

std::string_view AsChars(const std::vector<uint8_t>& bytes) {
  return std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace

absl::Status ShardedIndex::SaveSnapshot(const std::string& dir, int64_t sequence,
                                        const std::string& tag) const {
  absl::MutexLock save_lock(&save_mu_);
  std::vector<Shard::Image> images;
  std::vector<uint8_t> prototype;
  {
    absl::ReaderMutexLock lock(&mu_);
    images.reserve(shards_.size());
    const faiss::Index* trained = nullptr;
    for (size_t s = 0; s < shards_.size(); ++s) {
      absl::StatusOr<Shard::Image> image = shards_[s]->Serialize();
      if (!image.ok()) {
        return absl::Status(image.status().code(),
                            absl::StrCat("shard ", s, ": ", image.status().message()));
      }
      images.push_back(*std::move(image));
      if (shards_[s]->prototype() != nullptr) trained = shards_[s]->prototype().get();
    }
    if (trained != nullptr) {
      RETRACE_ASSIGN_OR_RETURN(prototype, internal::IndexToBytes(*trained));
    }
  }

  RETRACE_RETURN_IF_ERROR(files::CreateDirectory(dir));
  RETRACE_ASSIGN_OR_RETURN(const std::vector<std::string> existing, files::ListDirectory(dir));
  Manifest manifest;
  for (const std::string& name : existing) {
    manifest.generation = std::max(manifest.generation, GenerationOf(name));
  }
  ++manifest.generation;
  manifest.sequence = sequence;
  manifest.tag = tag;
  manifest.dim = static_cast<uint32_t>(options_.dim);
  manifest.shards = static_cast<uint32_t>(options_.shards);
  manifest.factory = options_.factory;
  auto write = [&](std::string name, std::string_view bytes) -> absl::Status {
    RETRACE_RETURN_IF_ERROR(files::WriteFileDurably(dir, name, bytes));
    manifest.files.push_back(FileEntry{std::move(name), bytes.size(), files::Crc32(bytes)});
    return absl::OkStatus();
  };
  for (size_t s = 0; s < images.size(); ++s) {
    Shard::Image image = std::move(images[s]);  // freed as soon as it is on disk
    RETRACE_RETURN_IF_ERROR(
        write(ShardFileName(manifest.generation, s, "faiss"), AsChars(image.index)));
    RETRACE_RETURN_IF_ERROR(write(ShardFileName(manifest.generation, s, "ids"), image.ids));
  }
  if (!prototype.empty()) {
    RETRACE_RETURN_IF_ERROR(write(PrototypeFileName(manifest.generation), AsChars(prototype)));
  }
  RETRACE_RETURN_IF_ERROR(files::SyncDirectory(dir));
  // The commit point: before this rename the old manifest (and its files) stand, after it the new.
  RETRACE_RETURN_IF_ERROR(files::WriteFileDurably(dir, kManifestName, EncodeManifest(manifest)));
  RETRACE_RETURN_IF_ERROR(files::SyncDirectory(dir));

  // Best effort: leftovers only cost disk, and the next save retries.
  absl::flat_hash_set<std::string> keep;
  for (const FileEntry& file : manifest.files) keep.insert(file.name);
  for (const std::string& name : existing) {
    if (IsSnapshotFile(name) && !keep.contains(name)) {
      files::RemoveFile(Join(dir, name)).IgnoreError();
    }
  }
  files::SyncDirectory(dir).IgnoreError();
  return absl::OkStatus();
}

absl::StatusOr<LoadedIndex> ShardedIndex::LoadSnapshot(const std::string& dir,
                                                       const IndexOptions& expected) {
  const std::string manifest_path = Join(dir, kManifestName);
  absl::StatusOr<std::vector<uint8_t>> manifest_bytes = files::ReadWholeFile(manifest_path);
  if (absl::IsNotFound(manifest_bytes.status())) {
    return absl::NotFoundError(
        absl::StrCat("no index snapshot in ", dir, " (", manifest_bytes.status().message(), ")"));
  }
  if (!manifest_bytes.ok()) return manifest_bytes.status();
  absl::StatusOr<Manifest> manifest = DecodeManifest(AsChars(*manifest_bytes));
  if (!manifest.ok()) {
    return absl::DataLossError(absl::StrCat(manifest_path, ": ", manifest.status().message()));
  }
  if (manifest->dim != static_cast<uint32_t>(expected.dim) ||
      manifest->shards != static_cast<uint32_t>(expected.shards) ||
      manifest->factory != expected.factory) {
    return absl::FailedPreconditionError(
        absl::StrCat("the index snapshot in ", dir, " has dim ", manifest->dim, ", ",
                     manifest->shards, " shards and factory '", manifest->factory, "' but dim ",
                     expected.dim, ", ", expected.shards, " shards and factory '", expected.factory,
                     "' are expected; rebuild the index from the store"));
  }
  RETRACE_ASSIGN_OR_RETURN(std::unique_ptr<ShardedIndex> index, Create(expected));

  // The manifest must name exactly the files SaveSnapshot writes, so it cannot point elsewhere.
  const size_t shards = manifest->shards;
  const std::vector<FileEntry>& files = manifest->files;
  bool named_as_expected = files.size() == 2 * shards || files.size() == 2 * shards + 1;
  for (size_t i = 0; named_as_expected && i < files.size(); ++i) {
    const std::string want =
        i == 2 * shards ? PrototypeFileName(manifest->generation)
                        : ShardFileName(manifest->generation, i / 2, i % 2 == 0 ? "faiss" : "ids");
    named_as_expected = files[i].name == want;
  }
  if (!named_as_expected) {
    return absl::DataLossError(
        absl::StrCat(manifest_path, ": does not list the files of a ", shards, "-shard index"));
  }

  std::shared_ptr<const faiss::Index> prototype;
  if (files.size() == 2 * shards + 1) {
    RETRACE_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadListedFile(dir, files.back()));
    absl::StatusOr<std::unique_ptr<faiss::Index>> read = internal::IndexFromBytes(std::move(bytes));
    if (!read.ok()) {
      return absl::DataLossError(
          absl::StrCat(Join(dir, files.back().name), ": ", read.status().message()));
    }
    internal::SetNprobe(**read, index->training_.nprobe);  // rebuilds clone it
    prototype = *std::move(read);
  }
  // Shards load in parallel, one thread per core: reading, checking and parsing a shard is
  // independent of the others, and a large snapshot is otherwise bound by one core.
  std::vector<std::unique_ptr<Shard>> restored(shards);
  std::vector<absl::Status> errors(shards);
  auto load = [&](size_t s) -> absl::Status {
    Shard::Image image;
    if (expected.mmap_snapshots) {
      RETRACE_ASSIGN_OR_RETURN(image.index_file, CheckListedFile(dir, files[2 * s]));
    } else {
      RETRACE_ASSIGN_OR_RETURN(image.index, ReadListedFile(dir, files[2 * s]));
    }
    RETRACE_ASSIGN_OR_RETURN(const std::vector<uint8_t> ids, ReadListedFile(dir, files[2 * s + 1]));
    image.ids.assign(ids.begin(), ids.end());
    absl::StatusOr<std::unique_ptr<Shard>> shard = Shard::Restore(
        expected.dim, expected.factory, std::move(image), prototype, index->training_.nprobe);
    if (!shard.ok()) {
      return absl::Status(shard.status().code(),
                          absl::StrCat(Join(dir, files[2 * s].name), " or ", files[2 * s + 1].name,
                                       ": ", shard.status().message()));
    }
    restored[s] = *std::move(shard);
    return absl::OkStatus();
  };
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t s; (s = next.fetch_add(1)) < shards;) errors[s] = load(s);
  };
  const size_t threads = std::min<size_t>(shards, std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> helpers;
  for (size_t t = 1; t < threads; ++t) helpers.emplace_back(worker);
  worker();
  for (std::thread& t : helpers) t.join();
  for (const absl::Status& error : errors) RETRACE_RETURN_IF_ERROR(error);
  {
    absl::MutexLock lock(&index->mu_);
    index->shards_ = std::move(restored);
  }
  return LoadedIndex{std::move(index), manifest->sequence, std::move(manifest->tag)};
}

}  // namespace retrace::index
