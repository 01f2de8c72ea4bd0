// byte_codec.h — the encoding of retrace's own snapshot files: little-endian fixed-width
// integers and length-prefixed byte strings (u64 length, then the bytes as they are).
//
// ByteReader never reads past its input: every getter returns false instead, and leaves the
// reader where it was, so a parser can report "truncated" and stop.
// Thread-safety: a ByteWriter or ByteReader is used by one thread at a time.
//
//   ByteWriter out; out.U64(7); out.Bytes("id\0x"); std::string file = out.Release();
//   ByteReader in(file); uint64_t n; std::string_view id; bool ok = in.U64(&n) && in.Bytes(&id);
#ifndef RETRACE_CORE_INDEX_INTERNAL_BYTE_CODEC_H_
#define RETRACE_CORE_INDEX_INTERNAL_BYTE_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace retrace::index::internal {

// ByteWriter appends encoded values to a string.
class ByteWriter {
 public:
  void Raw(std::string_view bytes) { out_.append(bytes.data(), bytes.size()); }
  void U8(uint8_t value) { Fixed(value, 1); }
  void U32(uint32_t value) { Fixed(value, 4); }
  void U64(uint64_t value) { Fixed(value, 8); }
  void I64(int64_t value) { Fixed(static_cast<uint64_t>(value), 8); }
  void Bytes(std::string_view bytes) {
    U64(bytes.size());
    Raw(bytes);
  }
  // size is the number of bytes written so far.
  size_t size() const { return out_.size(); }
  // view is what was written so far.
  std::string_view view() const { return out_; }
  // Release hands the bytes over and leaves the writer empty.
  std::string Release() { return std::move(out_); }

 private:
  void Fixed(uint64_t value, int width) {
    for (int i = 0; i < width; ++i) out_.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
  std::string out_;
};

// ByteReader decodes what ByteWriter wrote, from a view it does not own.
class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}

  // Raw takes exactly `size` bytes.
  bool Raw(size_t size, std::string_view* out) {
    if (size > in_.size()) return false;
    *out = in_.substr(0, size);
    in_.remove_prefix(size);
    return true;
  }
  bool U8(uint8_t* out) { return Fixed(1, out); }
  bool U32(uint32_t* out) { return Fixed(4, out); }
  bool U64(uint64_t* out) { return Fixed(8, out); }
  bool I64(int64_t* out) {
    uint64_t bits;
    if (!Fixed(8, &bits)) return false;
    *out = static_cast<int64_t>(bits);
    return true;
  }
  bool Bytes(std::string_view* out) {
    std::string_view before = in_;
    uint64_t size;
    if (U64(&size) && size <= in_.size()) return Raw(static_cast<size_t>(size), out);
    in_ = before;
    return false;
  }
  // remaining is the number of bytes not read yet.
  size_t remaining() const { return in_.size(); }

 private:
  template <typename T>
  bool Fixed(int width, T* out) {
    if (in_.size() < static_cast<size_t>(width)) return false;
    uint64_t value = 0;
    for (int i = 0; i < width; ++i) {
      value |= static_cast<uint64_t>(static_cast<uint8_t>(in_[static_cast<size_t>(i)])) << (8 * i);
    }
    in_.remove_prefix(static_cast<size_t>(width));
    *out = static_cast<T>(value);
    return true;
  }
  std::string_view in_;
};

}  // namespace retrace::index::internal

#endif  // RETRACE_CORE_INDEX_INTERNAL_BYTE_CODEC_H_
