// rankings_file.h — the per-query rankings an evaluation run saves, one JSON object per line:
//   {"query": "<id>", "label": "<class>", "relevant_in_gallery": N,
//    "hits": [["<id>", score, "<caption>"], ...]}
// Every reported number is recomputed from these files alone, and the HTML report draws them.
//
// Thread-safety: functions only.
#ifndef RETRACE_CLIENT_EVAL_RANKINGS_FILE_H_
#define RETRACE_CLIENT_EVAL_RANKINGS_FILE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace retrace::eval {

struct SavedHit {
  std::string id;
  float score = 0;
  std::string caption;
};

struct SavedQuery {
  std::string id, label;
  int relevant_in_gallery = 0;
  std::vector<SavedHit> hits;  // best first
};

// SaveRankings writes `queries` to `file` (replaced). INTERNAL if it cannot be written.
absl::Status SaveRankings(const std::string& file, const std::vector<SavedQuery>& queries);

// LoadRankings reads a file SaveRankings wrote. NOT_FOUND if unreadable; DATA_LOSS naming the
// file and line for a malformed line.
absl::StatusOr<std::vector<SavedQuery>> LoadRankings(const std::string& file);

// WriteRunFiles writes each (file name, text) into `out_dir` (replaced): results.json,
// results.md, ... INTERNAL naming the file that cannot be written.
absl::Status WriteRunFiles(const std::string& out_dir,
                           const std::vector<std::pair<std::string, std::string>>& files);

// LabelOf: the class of a dataset id "<domain>/<class>/<file>"; empty for another shape.
std::string LabelOf(const std::string& id);

}  // namespace retrace::eval

#endif  // RETRACE_CLIENT_EVAL_RANKINGS_FILE_H_
