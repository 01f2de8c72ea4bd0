#include "client/eval/html_report.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

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

absl::Status CheckOptions(const HtmlReportOptions& options) {
  if (options.queries_per_pair < 1 || options.queries_per_pair > 1000) {
    return absl::InvalidArgumentError("queries_per_pair: not in 1..1000");
  }
  if (options.hits_per_query < 1 || options.hits_per_query > 100) {
    return absl::InvalidArgumentError("hits_per_query: not in 1..100");
  }
  return absl::OkStatus();
}

// Page is what a report shows: a metrics table and sections of query rows.
struct PageHit {
  std::string path, id, caption;
  float score = 0;
  bool correct = false;
};
struct PageRow {
  std::string query_path, query_text;
  std::vector<PageHit> hits;
};
struct PageSection {
  std::string title;
  std::vector<PageRow> rows;
};
struct Page {
  std::string title, note;
  std::vector<std::string> columns;                               // metric table header
  std::vector<std::pair<std::string, std::vector<double>>> rows;  // name, values in [0, 1]
  std::vector<PageSection> sections;
};

absl::Status WritePage(const Page& page, const std::string& out_dir, int* images_shown) {
  const fs::path page_dir(out_dir);
  std::string html = absl::StrCat(
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>", Escape(page.title),
      "</title><style>", kStyle, "</style></head>\n<body>\n<h1>", Escape(page.title),
      "</h1>\n<p class=\"note\">", Escape(page.note), "</p>\n<table class=\"metrics\"><tr>");
  for (const std::string& column : page.columns) absl::StrAppend(&html, "<th>", column, "</th>");
  absl::StrAppend(&html, "</tr>\n");
  for (const auto& [name, values] : page.rows) {
    absl::StrAppend(&html, "<tr><th>", Escape(name), "</th>");
    for (double v : values) absl::StrAppend(&html, absl::StrFormat("<td>%.1f</td>", 100 * v));
    absl::StrAppend(&html, "</tr>\n");
  }
  absl::StrAppend(&html, "</table>\n");
  int shown = 0;
  for (const PageSection& section : page.sections) {
    absl::StrAppend(&html, "<h2>", section.title, "</h2>\n");
    for (const PageRow& row : section.rows) {
      absl::StrAppend(&html, "<div class=\"row\"><figure class=\"query\"><img src=\"",
                      ImageUrl(row.query_path, page_dir), "\" alt=\"query\">",
                      "<figcaption><b>query</b> ", Escape(row.query_text),
                      "</figcaption></figure>\n");
      ++shown;
      int rank = 0;
      for (const PageHit& hit : row.hits) {
        ++rank;
        absl::StrAppend(&html, "<figure class=\"hit", hit.correct ? " correct" : "",
                        "\"><img src=\"", ImageUrl(hit.path, page_dir), "\" alt=\"hit ", rank,
                        "\"><figcaption>", rank, absl::StrFormat(". %.4f ", hit.score),
                        Escape(hit.caption), "<br><span class=\"note\">", Escape(hit.id),
                        "</span></figcaption></figure>\n");
        ++shown;
      }
      absl::StrAppend(&html, "</div>\n");
    }
  }
  absl::StrAppend(&html, kCountScript, "</body></html>\n");
  if (absl::Status s = WriteRunFiles(out_dir, {{"report.html", html}}); !s.ok()) return s;
  if (images_shown != nullptr) *images_shown = shown;
  return absl::OkStatus();
}

// Rows: the first queries of a rankings file (by id) with their top hits.
absl::StatusOr<std::vector<PageRow>> Rows(
    const fs::path& rankings, const HtmlReportOptions& options,
    const std::function<std::string(const SavedQuery&)>& query_path,
    const std::function<std::string(const SavedQuery&)>& query_text,
    const std::function<bool(const SavedQuery&, const SavedHit&)>& correct,
    const fs::path& gallery_root) {
  auto queries = LoadRankings(rankings.string());
  if (!queries.ok()) return queries.status();
  std::sort(queries->begin(), queries->end(),
            [](const SavedQuery& a, const SavedQuery& b) { return a.id < b.id; });
  std::vector<PageRow> rows;
  const int n = std::min<int>(options.queries_per_pair, queries->size());
  for (int q = 0; q < n; ++q) {
    const SavedQuery& query = (*queries)[q];
    PageRow& row = rows.emplace_back();
    row.query_path = query_path(query);
    row.query_text = query_text(query);
    const int hits = std::min<int>(options.hits_per_query, query.hits.size());
    for (int h = 0; h < hits; ++h) {
      const SavedHit& hit = query.hits[h];
      row.hits.push_back({(gallery_root / hit.id).string(), hit.id, hit.caption, hit.score,
                          correct(query, hit)});
    }
  }
  return rows;
}

}  // namespace

absl::Status WriteCmHtmlReport(const CmReport& report, const std::string& out_dir,
                               const std::string& dataset_root, const HtmlReportOptions& options,
                               int* images_shown) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  Page page;
  page.title = "Caption-Matching evaluation";
  page.note = absl::StrCat("Dataset: ", dataset_root,
                           ". A hit is correct (green) when its class is the query's, wrong (red) "
                           "otherwise.");
  page.columns = {"metric"};
  for (const PairResult& p : report.pairs) {
    page.columns.push_back(absl::StrCat(Escape(p.query_domain), " &rarr; ",
                                        Escape(p.gallery_domain)));
  }
  page.columns.push_back("Avg");
  for (const std::string& name : report.metric_names) {
    std::vector<double> values;
    for (const PairResult& p : report.pairs) values.push_back(p.metrics.at(name));
    values.push_back(report.average.at(name));
    page.rows.emplace_back(name, std::move(values));
  }
  const fs::path root(dataset_root);
  for (const PairResult& p : report.pairs) {
    PageSection& section = page.sections.emplace_back();
    section.title = absl::StrCat(Escape(p.query_domain), " &rarr; ", Escape(p.gallery_domain));
    auto rows = Rows(
        fs::path(out_dir) / "rankings" / (p.query_domain + "-" + p.gallery_domain + ".jsonl"),
        options, [&](const SavedQuery& q) { return (root / q.id).string(); },
        [](const SavedQuery& q) { return q.id; },
        [](const SavedQuery& q, const SavedHit& hit) { return LabelOf(hit.id) == q.label; }, root);
    if (!rows.ok()) return rows.status();
    section.rows = std::move(*rows);
  }
  return WritePage(page, out_dir, images_shown);
}

absl::Status WriteProvenanceHtmlReport(const ProvenanceReport& report, const std::string& out_dir,
                                       const std::string& refs_dir, const std::string& queries_dir,
                                       const HtmlReportOptions& options, int* images_shown) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  // Query images are queries/<id>.<ext>.
  std::map<std::string, std::string> query_files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fs::path(queries_dir) / "queries", ec)) {
    query_files[entry.path().stem().string()] = entry.path().string();
  }
  Page page;
  page.title = "Provenance evaluation";
  page.note = absl::StrCat("References: ", refs_dir, "; queries: ", queries_dir,
                           ". The query's reference is outlined green, other hits red.");
  page.columns = {"features"};
  for (const std::string& name : report.metric_names) page.columns.push_back(Escape(name));
  for (const std::string& variant : report.variants) {
    std::vector<double> values;
    for (const std::string& name : report.metric_names) {
      values.push_back(report.results.at(variant).at(name));
    }
    page.rows.emplace_back(variant, std::move(values));
  }
  for (const std::string& variant : report.variants) {
    PageSection& section = page.sections.emplace_back();
    section.title = Escape(variant);
    auto rows = Rows(
        fs::path(out_dir) / "rankings" / (variant + ".jsonl"), options,
        [&](const SavedQuery& q) {
          auto it = query_files.find(q.id);
          return it == query_files.end() ? q.id : it->second;
        },
        [](const SavedQuery& q) { return absl::StrCat(q.id, " (of ", q.label, ")"); },
        [](const SavedQuery& q, const SavedHit& hit) { return hit.id == q.label; },
        fs::path(refs_dir));
    if (!rows.ok()) return rows.status();
    section.rows = std::move(*rows);
  }
  return WritePage(page, out_dir, images_shown);
}

}  // namespace retrace::eval
