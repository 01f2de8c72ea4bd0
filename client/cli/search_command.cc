// `retrace search`: the best items of a collection for an image, a text, an embedding or a
// stored item; or, with --batch, for every query of a JSON Lines file (SearchBatch).
#include <algorithm>
#include <fstream>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_format.h"
#include "client/cli/args.h"
#include "client/cli/cli.h"
#include "client/cli/filter_arg.h"
#include "client/cli/image_files.h"
#include "client/cli/output.h"
#include "core/engine/defaults.h"
#include "google/protobuf/util/json_util.h"

namespace retrace::cli {
namespace {

constexpr char kCommand[] = "search";

constexpr char kSearchUsage[] =
    R"(usage: retrace search --collection NAME (--image FILE | --text TEXT | --embedding V1,V2,...
                                            | --item ID [--include-self])
                      [--top-k K] [--mode caption|provenance|hybrid|caption-text]
                      [--caption TEXT] [--candidates N] [--beta B] [--w1 W] [--w2 W]
                      [--no-rerank] [--rrf-k K] [--lexical] [--after POSITION]
                      [--filter EXPR] [--min-score S] [--allow-partial]
       retrace search --batch FILE.jsonl [--collection NAME]

--mode caption (default): Caption-Matching, the query's CLIP embedding against the
  items' captions.
--mode provenance: the N nearest images by CS-SLIP + CLIP features (--candidates,
  default 100), re-ranked by S' = S + w1*exp(-beta*P) + w2*exp(-beta*P'), where P ranks
  each candidate's caption for the query and P' each candidate's image for the query's
  caption (--caption, e.g. the prompt that generated the image; default: the server
  captions an image query). Defaults beta 1, w1 0.1, w2 0.1; --no-rerank keeps S.
  Prints "rank  score  base  P  P'  id  caption".
--mode hybrid: both rankings fused by reciprocal rank, 1/(K + rank + 1) each (--rrf-k,
  default 60). Prints "rank  score  caption-rank  provenance-rank  id  caption".
  --lexical fuses a third ranking, caption-text's of the --text (else the --caption),
  and adds a "lexical-rank" column.
--mode caption-text: the --text query's words against the captions' words (the
  store's full-text index: BM25 on SQLite); the score is that relevance, higher first.
An --embedding is of the collection's caption_dim (caption) or image_dim (the others).
--item ID: search with a stored item of the collection (its stored embeddings and
  caption stand for its image; no model runs); the item itself is left out of the hits
  unless --include-self.
--top-k: default 10. An item's attributes follow its caption as k=v. With --json,
prints the SearchResponse.
--filter EXPR: rank only items whose attributes satisfy EXPR, in every mode, e.g.
  'license = "cc-by" and year >= 2020'. Conditions: k = "v", k != "v",
  k in ("a", "b"), k not in (...), k exists, k prefix "p", and numeric k < N, <=, >,
  >= (true when the value reads as a number); combined with and, or, not and
  parentheses (not binds tightest, then and, then or). Quote a key that is not a
  bare word ("my key") or is a keyword; strings take \" and \\. The item's times:
  @created and @updated with <, <=, >, >= against a quoted RFC 3339 time or date
  ("2026-01-31", midnight UTC) or milliseconds since the Unix epoch.
--min-score S: drop hits scoring below S (the score column: S in caption mode, S' in
  provenance mode, the fused score in hybrid mode, the lexical relevance in caption-text
  mode); prints how many were dropped.
--allow-partial: through a sharded cluster's frontend, answer without the shard groups
  that cannot be searched (it prints the shards left out) rather than fail UNAVAILABLE.
--after POSITION: answer only once the server has applied the store's changes up to
  POSITION (what `index` and `delete` print), so a search on any replica sees those
  writes; DEADLINE_EXCEEDED if it has not within --timeout.
--batch FILE.jsonl: one search per line, each a SearchRequest in JSON (e.g.
  {"itemId": "a.jpg", "mode": "PROVENANCE", "topK": 5}; a line without "collection"
  takes --collection); "-" reads stdin. Sent 64 to a call (SearchBatch, the server's
  bulk lane); prints one JSON line per query, in order: its status and response. A bad
  query fails alone; the exit status is 1 when any did.
)";

// kBatchChunk: queries per SearchBatch call, the server's default limits.max_queries_per_call.
constexpr int kBatchChunk = engine::defaults::kMaxQueriesPerCall;

// ParseFloat: one finite float for option `name`.
absl::StatusOr<float> ParseFloat(const std::string& name, const std::string& value) {
  auto values = ParseFloatList(name, value);
  if (!values.ok()) return values.status();
  if (values->size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": expected one number, got '", value, "'"));
  }
  return (*values)[0];
}

std::string Rank(int32_t rank) { return rank < 0 ? "-" : absl::StrCat(rank); }

// RunBatch: `retrace search --batch FILE`: every line's SearchRequest, kBatchChunk to a call,
// answered as JSON Lines in order. A malformed line stops it before anything is sent.
int RunBatch(CliContext& context, const std::string& path, const std::string& collection) {
  std::ifstream file;
  if (path != "-") {
    file.open(path);
    if (!file) return context.Error(kCommand, absl::StrCat(path, ": cannot be read"));
  }
  std::istream& in = path == "-" ? std::cin : file;
  std::vector<v1::SearchRequest> queries;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    v1::SearchRequest& request = queries.emplace_back();
    const auto parsed = google::protobuf::util::JsonStringToMessage(line, &request);
    if (!parsed.ok()) {
      return context.UsageError(kCommand,
                                absl::StrCat(path, ":", number, ": not a SearchRequest: ",
                                             std::string(parsed.message())),
                                kSearchUsage);
    }
    if (request.collection().empty()) request.set_collection(collection);
  }
  if (queries.empty()) return context.UsageError(kCommand, path + ": no queries", kSearchUsage);
  int failed = 0;
  for (size_t start = 0; start < queries.size(); start += kBatchChunk) {
    v1::SearchBatchRequest request;
    const size_t end = std::min(queries.size(), start + kBatchChunk);
    for (size_t i = start; i < end; ++i) *request.add_queries() = std::move(queries[i]);
    v1::SearchBatchResponse response;
    grpc::Status status = context.client().SearchBatch(request, &response);
    if (!status.ok()) return context.RpcError(kCommand, status);
    for (int i = 0; i < response.results_size(); ++i) {
      v1::SearchBatchResult& result = *response.mutable_results(i);
      if (result.status().code() != 0) {
        ++failed;
        // The server numbers queries within its call; a user has the file's numbering.
        const std::string message = result.status().message();
        const size_t colon = message.find("]: ");
        result.mutable_status()->set_message(absl::StrCat(
            "queries[", start + i, "]: ",
            colon == std::string::npos ? message : message.substr(colon + 3)));
      }
      context.out() << ToJson(result, /*multiline=*/false) << "\n";
    }
  }
  if (failed > 0) {
    context.err() << "retrace: search: " << failed << " of " << queries.size()
                  << " queries failed\n";
    return kExitFailed;
  }
  return kExitOk;
}

}  // namespace

absl::StatusOr<v1::SearchMode> ParseSearchMode(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "caption") return v1::CAPTION_MATCH;
  if (lower == "provenance") return v1::PROVENANCE;
  if (lower == "hybrid") return v1::HYBRID;
  if (lower == "caption-text") return v1::CAPTION_TEXT;
  return absl::InvalidArgumentError(absl::StrCat(
      "--mode: expected caption, provenance, hybrid or caption-text, got '", name, "'"));
}

int RunSearchCommand(CliContext& context, const std::vector<std::string>& args) {
  auto parsed = ParseArgs(args, {{"collection", true},
                                 {"image", true},
                                 {"text", true},
                                 {"embedding", true},
                                 {"top-k", true},
                                 {"mode", true},
                                 {"caption", true},
                                 {"candidates", true},
                                 {"beta", true},
                                 {"w1", true},
                                 {"w2", true},
                                 {"no-rerank", false},
                                 {"rrf-k", true},
                                 {"lexical", false},
                                 {"after", true},
                                 {"filter", true},
                                 {"min-score", true},
                                 {"item", true},
                                 {"include-self", false},
                                 {"allow-partial", false},
                                 {"batch", true},
                                 {"help", false}});
  if (!parsed.ok()) return context.UsageError(kCommand, parsed.status().message(), kSearchUsage);
  if (parsed->Has("help")) {
    context.out() << kSearchUsage;
    return kExitOk;
  }
  if (!parsed->positional().empty()) {
    return context.UsageError(kCommand,
                              absl::StrCat("unexpected argument '", parsed->positional()[0], "'"),
                              kSearchUsage);
  }
  if (parsed->Has("batch")) {
    for (const char* option : {"image", "text", "embedding", "item", "include-self", "top-k",
                               "mode", "caption", "candidates", "beta", "w1", "w2", "no-rerank",
                               "rrf-k", "after", "filter", "min-score", "allow-partial"}) {
      if (parsed->Has(option)) {
        return context.UsageError(
            kCommand, absl::StrCat("--", option, " does not go with --batch (put it in the file)"),
            kSearchUsage);
      }
    }
    return RunBatch(context, parsed->Value("batch"),
                    parsed->Has("collection") ? parsed->Value("collection") : "");
  }
  if (!parsed->Has("collection")) {
    return context.UsageError(kCommand, "missing --collection", kSearchUsage);
  }
  const int queries = parsed->Has("image") + parsed->Has("text") + parsed->Has("embedding") +
                      parsed->Has("item");
  if (queries != 1) {
    return context.UsageError(kCommand,
                              "give exactly one of --image, --text, --embedding and --item",
                              kSearchUsage);
  }
  if (parsed->Has("include-self") && !parsed->Has("item")) {
    return context.UsageError(kCommand, "--include-self goes with --item", kSearchUsage);
  }

  v1::SearchRequest request;
  request.set_collection(parsed->Value("collection"));
  if (parsed->Has("top-k")) {
    auto top_k = ParseInt("top-k", parsed->Value("top-k"), 1, INT32_MAX);
    if (!top_k.ok()) return context.UsageError(kCommand, top_k.status().message(), kSearchUsage);
    request.set_top_k(static_cast<int32_t>(*top_k));
  }
  if (parsed->Has("mode")) {
    auto mode = ParseSearchMode(parsed->Value("mode"));
    if (!mode.ok()) return context.UsageError(kCommand, mode.status().message(), kSearchUsage);
    request.set_mode(*mode);
  } else {
    request.set_mode(v1::CAPTION_MATCH);
  }
  if (request.mode() == v1::CAPTION_MATCH || request.mode() == v1::CAPTION_TEXT) {
    for (const char* option : {"caption", "candidates", "beta", "w1", "w2", "no-rerank", "rrf-k"}) {
      if (parsed->Has(option)) {
        return context.UsageError(
            kCommand, absl::StrCat("--", option, " goes with --mode provenance or hybrid"),
            kSearchUsage);
      }
    }
  }
  for (const char* option : {"rrf-k", "lexical"}) {
    if (parsed->Has(option) && request.mode() != v1::HYBRID) {
      return context.UsageError(kCommand, absl::StrCat("--", option, " goes with --mode hybrid"),
                                kSearchUsage);
    }
  }
  if (parsed->Has("lexical")) request.mutable_hybrid()->set_lexical(true);
  if (parsed->Has("caption")) request.set_query_caption(parsed->Value("caption"));
  if (parsed->Has("after")) {
    auto after = ParseInt("after", parsed->Value("after"), 0, INT64_MAX);
    if (!after.ok()) return context.UsageError(kCommand, after.status().message(), kSearchUsage);
    request.set_min_position(*after);
  }
  if (parsed->Has("filter")) {
    absl::Status f = ParseFilterArg(parsed->Value("filter"), request.mutable_filter());
    if (!f.ok()) return context.UsageError(kCommand, f.message(), kSearchUsage);
  }
  request.set_allow_partial(parsed->Has("allow-partial"));
  if (parsed->Has("min-score")) {
    auto min_score = ParseFloat("min-score", parsed->Value("min-score"));
    if (!min_score.ok()) {
      return context.UsageError(kCommand, min_score.status().message(), kSearchUsage);
    }
    request.set_min_score(*min_score);
  }
  v1::ProvenanceOptions* provenance = request.mutable_provenance();
  if (parsed->Has("candidates")) {
    auto n = ParseInt("candidates", parsed->Value("candidates"), 1, INT32_MAX);
    if (!n.ok()) return context.UsageError(kCommand, n.status().message(), kSearchUsage);
    provenance->set_candidates(static_cast<int32_t>(*n));
  }
  for (const char* option : {"beta", "w1", "w2"}) {
    if (!parsed->Has(option)) continue;
    auto value = ParseFloat(option, parsed->Value(option));
    if (!value.ok()) return context.UsageError(kCommand, value.status().message(), kSearchUsage);
    const std::string name = option;
    if (name == "beta") provenance->set_beta(*value);
    if (name == "w1") provenance->set_w1(*value);
    if (name == "w2") provenance->set_w2(*value);
  }
  provenance->set_no_rerank(parsed->Has("no-rerank"));
  if (parsed->Has("rrf-k")) {
    auto k = ParseInt("rrf-k", parsed->Value("rrf-k"), 1, INT32_MAX);
    if (!k.ok()) return context.UsageError(kCommand, k.status().message(), kSearchUsage);
    request.mutable_hybrid()->set_rrf_k(static_cast<int32_t>(*k));
  }
  if (parsed->Has("image")) {
    const std::string file = parsed->Value("image");
    absl::StatusOr<std::string> bytes = ReadFileBytes(file, context.max_image_bytes());
    if (!bytes.ok())
      return context.Error(kCommand, absl::StrCat(file, ": ", bytes.status().message()));
    request.set_image(std::move(*bytes));
  } else if (parsed->Has("text")) {
    request.set_text(parsed->Value("text"));
  } else if (parsed->Has("item")) {
    request.set_item_id(parsed->Value("item"));
    request.set_include_self(parsed->Has("include-self"));
  } else {
    auto values = ParseFloatList("embedding", parsed->Value("embedding"));
    if (!values.ok()) return context.UsageError(kCommand, values.status().message(), kSearchUsage);
    request.mutable_embedding()->mutable_values()->Add(values->begin(), values->end());
  }

  v1::SearchResponse response;
  grpc::Status status = context.client().Search(request, &response);
  if (!status.ok()) return context.RpcError(kCommand, status);
  if (context.json()) {
    context.out() << ToJson(response, /*multiline=*/true) << "\n";
    return kExitOk;
  }
  if (!response.missing_shards().empty()) {
    context.out() << "partial answer: shards " << absl::StrJoin(response.missing_shards(), ", ")
                  << " could not be searched\n";
  }
  if (response.cut_by_min_score() > 0) {
    context.out() << response.cut_by_min_score() << " hit"
                  << (response.cut_by_min_score() == 1 ? "" : "s")
                  << " below --min-score dropped\n";
  }
  if (response.hits().empty()) {
    context.out() << "no hits\n";
    return kExitOk;
  }
  if (!response.query_caption().empty()) {
    context.out() << "query caption: " << response.query_caption() << "\n";
  }
  if (response.stale()) {
    context.err() << "retrace: search: the server cannot reach its store now: these hits are as "
                     "of position "
                  << response.applied_position() << " and may miss later writes\n";
  }
  Table table;
  if (request.mode() == v1::PROVENANCE) {
    table = {{"rank", "score", "base", "P", "P'", "id", "caption"},
             {},
             {true, true, true, true, true},
             /*flexible_column=*/6};
  } else if (request.mode() == v1::HYBRID && request.hybrid().lexical()) {
    table = {{"rank", "score", "caption-rank", "provenance-rank", "lexical-rank", "id", "caption"},
             {},
             {true, true, true, true, true},
             /*flexible_column=*/6};
  } else if (request.mode() == v1::HYBRID) {
    table = {{"rank", "score", "caption-rank", "provenance-rank", "id", "caption"},
             {},
             {true, true, true, true},
             /*flexible_column=*/5};
  } else {
    table = {{"rank", "score", "id", "caption"}, {}, {true, true}, /*flexible_column=*/3};
  }
  int rank = 0;
  for (const v1::SearchHit& hit : response.hits()) {
    std::vector<std::string> row = {absl::StrCat(++rank), absl::StrFormat("%.4f", hit.score())};
    if (request.mode() == v1::PROVENANCE) {
      row.push_back(absl::StrFormat("%.4f", hit.provenance().base_score()));
      row.push_back(Rank(hit.provenance().caption_rank()));
      row.push_back(Rank(hit.provenance().image_rank()));
    } else if (request.mode() == v1::HYBRID) {
      row.push_back(Rank(hit.hybrid().caption_match_rank()));
      row.push_back(Rank(hit.hybrid().provenance_rank()));
      if (request.hybrid().lexical()) row.push_back(Rank(hit.hybrid().lexical_rank()));
    }
    row.push_back(hit.id());
    row.push_back(CaptionWithAttributes(hit.caption(), hit.attributes()));
    table.rows.push_back(std::move(row));
  }
  context.out() << RenderTable(table);
  return kExitOk;
}

}  // namespace retrace::cli
