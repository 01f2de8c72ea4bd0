// html_report.h — an evaluation run as a page people look at: its metrics table, then per domain
// pair (Caption-Matching) or feature variant (provenance) a grid of queries and their top hits,
// correct hits outlined green and wrong ones red (as in the papers' figures), with each hit's
// caption and score under it.
//
// The page is drawn from the saved rankings (rankings_file.h) alone, so it always shows exactly
// the numbers' data. Images are linked, not copied: paths relative to the page when they can be.
// A script on the page counts the images that loaded into <body data-images-loaded>, so a
// headless browser can check the page renders.
//
// Thread-safety: functions only.
//
//   RETRACE_RETURN_IF_ERROR(WriteCmHtmlReport(report, out_dir, dataset_root, {}));
#ifndef RETRACE_CLIENT_EVAL_HTML_REPORT_H_
#define RETRACE_CLIENT_EVAL_HTML_REPORT_H_

#include <string>

#include "absl/status/status.h"
#include "client/eval/cm_protocol.h"
#include "client/eval/provenance_protocol.h"

namespace retrace::eval {

struct HtmlReportOptions {
  int queries_per_pair = 6;  // the first queries of each pair (by id); 1..1000
  int hits_per_query = 5;    // 1..100
};

// WriteCmHtmlReport writes <out_dir>/report.html for a Caption-Matching run whose rankings are in
// <out_dir>/rankings and whose images are under `dataset_root`. Returns the number of images the
// page shows through `images_shown` when not null. INVALID_ARGUMENT for bad options; the
// rankings' errors; INTERNAL if the page cannot be written.
absl::Status WriteCmHtmlReport(const CmReport& report, const std::string& out_dir,
                               const std::string& dataset_root, const HtmlReportOptions& options,
                               int* images_shown = nullptr);

// WriteProvenanceHtmlReport writes <out_dir>/report.html for a provenance run: per feature
// variant, queries (from <queries_dir>/queries) and their top hits (from `refs_dir`), the
// query's reference outlined green. Errors as WriteCmHtmlReport.
absl::Status WriteProvenanceHtmlReport(const ProvenanceReport& report, const std::string& out_dir,
                                       const std::string& refs_dir, const std::string& queries_dir,
                                       const HtmlReportOptions& options,
                                       int* images_shown = nullptr);

}  // namespace retrace::eval

#endif  // RETRACE_CLIENT_EVAL_HTML_REPORT_H_
