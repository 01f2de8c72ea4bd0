#include "core/store/caption_terms.h"

#include <algorithm>

#include "absl/strings/ascii.h"

namespace retrace::store {

std::vector<std::string> CaptionTerms(absl::string_view text) {
  std::vector<std::string> terms;
  std::string word;
  auto finish = [&] {
    if (!word.empty() && std::find(terms.begin(), terms.end(), word) == terms.end()) {
      terms.push_back(word);
    }
    word.clear();
  };
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x80 || absl::ascii_isalnum(byte)) {
      word.push_back(absl::ascii_tolower(byte));
    } else {
      finish();
    }
  }
  finish();
  return terms;
}

}  // namespace retrace::store
