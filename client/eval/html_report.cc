#include "client/eval/html_report.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/eval/rankings_file.h"

namespace retrace::eval {
namespace {

namespace fs = std::filesystem;

std::string Escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// ImageUrl: the image's path relative to the page when there is one, else absolute; each path
// segment percent-encoded where a URL needs it.
std::string ImageUrl(const fs::path& image, const fs::path& page_dir) {
  std::error_code ec;
  fs::path target = fs::absolute(image, ec);
  fs::path relative = fs::relative(target, fs::absolute(page_dir, ec), ec);
  const std::string path = (!ec && !relative.empty()) ? relative.generic_string()
                                                      : "file://" + target.generic_string();
  std::string url;
  for (unsigned char c : path) {
    if (std::isalnum(c) || std::string("/._-~:").find(c) != std::string::npos) {
      url += static_cast<char>(c);
    } else {
      url += absl::StrFormat("%%%02X", c);
    }
  }
  return url;
}

constexpr char kStyle[] = R"(
body { font-family: sans-serif; margin: 24px; color: #222; }
table.metrics { border-collapse: collapse; margin-bottom: 24px; }
table.metrics td, table.metrics th { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
.row { display: flex; gap: 10px; margin: 8px 0 16px; align-items: flex-start; }
figure { margin: 0; width: 132px; font-size: 11px; }
figure img { width: 124px; height: 124px; object-fit: contain; border: 4px solid #999;
             background: #f4f4f4; }
figure.query img { border-color: #36c; }
figure.hit img { border-color: #d33; }
figure.hit.correct img { border-color: #2a2; }
figcaption { word-wrap: break-word; }
.note { color: #666; }
)";

constexpr char kCountScript[] = R"(
<script>
window.addEventListener('load', function () {
  var images = document.querySelectorAll('img');
  var loaded = 0;
  images.forEach(function (img) { if (img.complete && img.naturalWidth > 0) loaded++; });
  document.body.setAttribute('data-images-loaded', String(loaded));
  document.body.setAttribute('data-images-total', String(images.length));
});
</script>
)";

}  // namespace

absl::Status WriteCmHtmlReport(const CmReport& report, const std::string& out_dir,
                               const std::string& dataset_root, const HtmlReportOptions& options,
                               int* images_shown) {
  if (options.queries_per_pair < 1 || options.queries_per_pair > 1000) {
    return absl::InvalidArgumentError("queries_per_pair: not in 1..1000");
  }
  if (options.hits_per_query < 1 || options.hits_per_query > 100) {
    return absl::InvalidArgumentError("hits_per_query: not in 1..100");
  }
  const fs::path page_dir(out_dir);
  std::string html = absl::StrCat(
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>retrace evaluation: "
      "Caption-Matching</title><style>",
      kStyle, "</style></head>\n<body>\n<h1>Caption-Matching evaluation</h1>\n",
      "<p class=\"note\">Dataset: ", Escape(dataset_root),
      ". A hit is correct (green) when its class is the query's, wrong (red) otherwise.</p>\n");
  // The numbers, as in results.md.
  absl::StrAppend(&html, "<table class=\"metrics\"><tr><th>metric</th>");
  for (const PairResult& p : report.pairs) {
    absl::StrAppend(&html, "<th>", Escape(p.query_domain), " &rarr; ", Escape(p.gallery_domain),
                    "</th>");
  }
  absl::StrAppend(&html, "<th>Avg</th></tr>\n");
  for (const std::string& name : report.metric_names) {
    absl::StrAppend(&html, "<tr><th>", Escape(name), "</th>");
    for (const PairResult& p : report.pairs) {
      absl::StrAppend(&html, absl::StrFormat("<td>%.1f</td>", 100 * p.metrics.at(name)));
    }
    absl::StrAppend(&html, absl::StrFormat("<td>%.1f</td></tr>\n", 100 * report.average.at(name)));
  }
  absl::StrAppend(&html, "</table>\n");

  int shown = 0;
  for (const PairResult& p : report.pairs) {
    const std::string pair = p.query_domain + "-" + p.gallery_domain;
    auto queries = LoadRankings((page_dir / "rankings" / (pair + ".jsonl")).string());
    if (!queries.ok()) return queries.status();
    std::sort(queries->begin(), queries->end(),
              [](const SavedQuery& a, const SavedQuery& b) { return a.id < b.id; });
    absl::StrAppend(&html, "<h2>", Escape(p.query_domain), " &rarr; ", Escape(p.gallery_domain),
                    "</h2>\n");
    const int n = std::min<int>(options.queries_per_pair, queries->size());
    for (int q = 0; q < n; ++q) {
      const SavedQuery& query = (*queries)[q];
      absl::StrAppend(&html, "<div class=\"row\"><figure class=\"query\"><img src=\"",
                      ImageUrl(fs::path(dataset_root) / query.id, page_dir), "\" alt=\"query\">",
                      "<figcaption><b>query</b> ", Escape(query.id), "</figcaption></figure>\n");
      ++shown;
      const int hits = std::min<int>(options.hits_per_query, query.hits.size());
      for (int h = 0; h < hits; ++h) {
        const SavedHit& hit = query.hits[h];
        const bool correct = LabelOf(hit.id) == query.label;
        absl::StrAppend(
            &html, "<figure class=\"hit", correct ? " correct" : "", "\"><img src=\"",
            ImageUrl(fs::path(dataset_root) / hit.id, page_dir), "\" alt=\"hit ", h + 1,
            "\"><figcaption>", h + 1, absl::StrFormat(". %.4f ", hit.score), Escape(hit.caption),
            "<br><span class=\"note\">", Escape(hit.id), "</span></figcaption></figure>\n");
        ++shown;
      }
      absl::StrAppend(&html, "</div>\n");
    }
  }
  absl::StrAppend(&html, kCountScript, "</body></html>\n");
  const fs::path file = page_dir / "report.html";
  std::ofstream out(file, std::ios::trunc);
  out << html;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(file.string(), ": cannot be written"));
  if (images_shown != nullptr) *images_shown = shown;
  return absl::OkStatus();
}

}  // namespace retrace::eval
