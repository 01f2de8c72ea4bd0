#include "core/engine/item_table.h"

#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/common/files.h"
#include "core/common/status_macros.h"

namespace retrace::engine {
namespace {

// The file: "RTITEMS2", then varint-length-prefixed fields: the position (as text), the tag, the
// number of entries, and per entry its id, caption, created and updated times (varints),
// attribute count and key/value pairs; then the CRC-32 of everything before it, 4 bytes
// little-endian. A file of the first format (without times) is not read: the collection is
// rebuilt from the store, as for any unusable snapshot.
constexpr char kMagic[] = "RTITEMS2";
constexpr char kFileName[] = "items";

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void PutBytes(std::string& out, std::string_view bytes) {
  PutVarint(out, bytes.size());
  out.append(bytes);
}

class Reader {
 public:
  explicit Reader(std::string_view bytes) : rest_(bytes) {}
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (rest_.empty()) return false;
      const uint8_t b = static_cast<uint8_t>(rest_[0]);
      rest_.remove_prefix(1);
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  bool Bytes(std::string* out) {
    uint64_t n;
    if (!Varint(&n) || n > rest_.size()) return false;
    out->assign(rest_.data(), n);
    rest_.remove_prefix(n);
    return true;
  }
  bool done() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

}  // namespace

void ItemTable::Put(const std::string& id, Entry entry) {
  absl::MutexLock lock(&mu_);
  entries_[id] = std::move(entry);
}

void ItemTable::Remove(const std::string& id) {
  absl::MutexLock lock(&mu_);
  entries_.erase(id);
}

std::vector<std::optional<ItemTable::Entry>> ItemTable::Get(
    const std::vector<std::string>& ids) const {
  std::vector<std::optional<Entry>> found(ids.size());
  absl::ReaderMutexLock lock(&mu_);
  for (size_t i = 0; i < ids.size(); ++i) {
    auto it = entries_.find(ids[i]);
    if (it != entries_.end()) found[i] = it->second;
  }
  return found;
}

size_t ItemTable::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return entries_.size();
}

ItemTable::Matched ItemTable::Match(const filter::Filter& filter) const {
  Matched matched;
  absl::ReaderMutexLock lock(&mu_);
  matched.total = entries_.size();
  for (const auto& [id, entry] : entries_) {
    if (filter::Evaluate(filter, {entry.attributes, entry.created_ms, entry.updated_ms})) {
      matched.ids.insert(id);
    }
  }
  return matched;
}

absl::Status ItemTable::Save(const std::string& dir, int64_t position,
                             const std::string& tag) const {
  std::string out = kMagic;
  PutBytes(out, absl::StrCat(position));
  PutBytes(out, tag);
  {
    absl::ReaderMutexLock lock(&mu_);
    PutVarint(out, entries_.size());
    for (const auto& [id, entry] : entries_) {
      PutBytes(out, id);
      PutBytes(out, entry.caption);
      PutVarint(out, static_cast<uint64_t>(entry.created_ms));
      PutVarint(out, static_cast<uint64_t>(entry.updated_ms));
      PutVarint(out, entry.attributes.size());
      for (const auto& [key, value] : entry.attributes) {
        PutBytes(out, key);
        PutBytes(out, value);
      }
    }
  }
  const uint32_t crc = files::Crc32(out);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  RETRACE_RETURN_IF_ERROR(files::WriteFileDurably(dir, kFileName, out));
  return files::SyncDirectory(dir);
}

absl::StatusOr<ItemTable::Loaded> ItemTable::Load(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/", kFileName);
  RETRACE_ASSIGN_OR_RETURN(std::vector<uint8_t> raw, files::ReadWholeFile(path));
  const std::string_view bytes(reinterpret_cast<const char*>(raw.data()), raw.size());
  auto corrupt = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat(path, ": ", why));
  };
  const size_t magic = std::strlen(kMagic);
  if (bytes.size() < magic + 4 || bytes.substr(0, magic) != kMagic) {
    return corrupt(bytes.substr(0, 7) == "RTITEMS"
                       ? "an item table of an older format (without item times)"
                       : "not an item table (bad magic or truncated)");
  }
  const std::string_view body = bytes.substr(0, bytes.size() - 4);
  uint32_t stored = 0;
  for (int i = 0; i < 4; ++i) {
    stored |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[bytes.size() - 4 + i])) << (8 * i);
  }
  if (files::Crc32(body) != stored) return corrupt("checksum mismatch");
  Reader in(body.substr(magic));
  Loaded loaded;
  loaded.table = std::make_unique<ItemTable>();
  std::string position;
  uint64_t count;
  if (!in.Bytes(&position) || !in.Bytes(&loaded.tag) || !in.Varint(&count) ||
      !absl::SimpleAtoi(position, &loaded.position)) {
    return corrupt("malformed header");
  }
  absl::MutexLock lock(&loaded.table->mu_);
  for (uint64_t i = 0; i < count; ++i) {
    std::string id;
    Entry entry;
    uint64_t created, updated, attributes;
    if (!in.Bytes(&id) || !in.Bytes(&entry.caption) || !in.Varint(&created) ||
        !in.Varint(&updated) || !in.Varint(&attributes)) {
      return corrupt(absl::StrCat("malformed entry ", i));
    }
    entry.created_ms = static_cast<int64_t>(created);
    entry.updated_ms = static_cast<int64_t>(updated);
    for (uint64_t a = 0; a < attributes; ++a) {
      std::string key, value;
      if (!in.Bytes(&key) || !in.Bytes(&value)) return corrupt(absl::StrCat("entry ", i));
      entry.attributes.emplace(std::move(key), std::move(value));
    }
    loaded.table->entries_.emplace(std::move(id), std::move(entry));
  }
  if (!in.done()) return corrupt("trailing bytes");
  return loaded;
}

}  // namespace retrace::engine
