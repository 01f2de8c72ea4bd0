#include "client/eval/rankings_file.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace retrace::eval {

using json = nlohmann::json;

absl::Status SaveRankings(const std::string& file, const std::vector<SavedQuery>& queries) {
  std::ofstream out(file, std::ios::trunc);
  for (const SavedQuery& q : queries) {
    json hits = json::array();
    for (const SavedHit& hit : q.hits) {
      hits.push_back(json::array({hit.id, hit.score, hit.caption}));
    }
    out << json{{"query", q.id}, {"label", q.label},
                {"relevant_in_gallery", q.relevant_in_gallery}, {"hits", hits}}
               .dump()
        << "\n";
  }
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(file, ": cannot be written"));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SavedQuery>> LoadRankings(const std::string& file) {
  std::ifstream in(file);
  if (!in) return absl::NotFoundError(absl::StrCat(file, ": cannot be read"));
  std::vector<SavedQuery> queries;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    try {
      json j = json::parse(line);
      SavedQuery& q = queries.emplace_back();
      q.id = j.at("query").get<std::string>();
      q.label = j.at("label").get<std::string>();
      q.relevant_in_gallery = j.at("relevant_in_gallery").get<int>();
      for (const json& hit : j.at("hits")) {
        q.hits.push_back({hit.at(0).get<std::string>(), hit.at(1).get<float>(),
                          hit.size() > 2 ? hit.at(2).get<std::string>() : std::string()});
      }
    } catch (const json::exception& e) {
      return absl::DataLossError(absl::StrCat(file, ":", number, ": ", e.what()));
    }
  }
  return queries;
}

absl::Status WriteRunFiles(const std::string& out_dir,
                           const std::vector<std::pair<std::string, std::string>>& files) {
  for (const auto& [name, text] : files) {
    const std::string path = absl::StrCat(out_dir, "/", name);
    std::ofstream out(path, std::ios::trunc);
    out << text;
    out.close();
    if (!out) return absl::InternalError(absl::StrCat(path, ": cannot be written"));
  }
  return absl::OkStatus();
}

std::string LabelOf(const std::string& id) {
  std::vector<std::string> parts = absl::StrSplit(id, '/');
  return parts.size() >= 3 ? parts[parts.size() - 2] : std::string();
}

}  // namespace retrace::eval
