// freshness_bench — the half of bench/replication.sh that times freshness (issue 14): how long
// after replica A acknowledges an Index does replica B answer with the item. A benchmark, not a
// test.
//
//   freshness_bench --writer A --reader B --collection C --image FILE [--writes 200]
//
// Each write indexes one new item (FILE's bytes, a given caption, so A spends no time
// captioning) through A, one at a time, --interval_ms apart. Freshness is the time from A's
// answer to B's answer of a Get with min_position = that answer's position (B answers once it
// has applied the change: the server waits, nobody polls). Right after, the same Get with no
// min_position times B's plain round trip, the floor of what freshness can be. Prints one JSON
// object: p50/p99/max of both, in milliseconds (nearest rank).
#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "client/retrace_client.h"

ABSL_FLAG(std::string, writer, "", "replica A: HOST:PORT that the items are indexed through");
ABSL_FLAG(std::string, reader, "", "replica B: HOST:PORT that they are read back from");
ABSL_FLAG(std::string, collection, "", "an existing collection");
ABSL_FLAG(std::string, image, "", "an image file (every item is this image under a new id)");
ABSL_FLAG(int, writes, 200, "items written, one at a time");
ABSL_FLAG(int, interval_ms, 50, "pause between writes");
ABSL_FLAG(std::string, id_prefix, "fresh-", "the items' ids: PREFIX<n>");

namespace retrace {
namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = ::retrace::v1;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Quantile: nearest rank, as retrace bench reports.
double Quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::max(1.0, std::ceil(q * v.size())));
  return v[std::min(rank, v.size()) - 1];
}

std::string Summary(const char* name, const std::vector<double>& v) {
  return absl::StrCat("\"", name, "_ms\": {\"p50\": ", Quantile(v, 0.5), ", \"p99\": ",
                      Quantile(v, 0.99), ", \"max\": ", Quantile(v, 1.0), "}");
}

int Run() {
  const std::string collection = absl::GetFlag(FLAGS_collection);
  std::ifstream in(absl::GetFlag(FLAGS_image), std::ios::binary);
  const std::string image((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (absl::GetFlag(FLAGS_writer).empty() || absl::GetFlag(FLAGS_reader).empty() ||
      collection.empty() || image.empty() || absl::GetFlag(FLAGS_writes) < 1) {
    std::fprintf(stderr, "usage: freshness_bench --writer A --reader B --collection C --image FILE "
                         "[--writes N] (the image must be readable)\n");
    return 2;
  }
  client::ClientOptions options;
  options.timeout = std::chrono::seconds(30);
  options.server = absl::GetFlag(FLAGS_writer);
  auto writer = client::RetraceClient::Connect(options);
  options.server = absl::GetFlag(FLAGS_reader);
  auto reader = client::RetraceClient::Connect(options);

  std::vector<double> freshness, round_trip;
  for (int n = 0; n < absl::GetFlag(FLAGS_writes); ++n) {
    v1::Item item;
    item.set_id(absl::StrCat(absl::GetFlag(FLAGS_id_prefix), n));
    item.set_image(image);
    item.set_caption(absl::StrCat("a freshness probe number ", n));
    int64_t position = 0;
    bool item_ok = false;
    const grpc::Status indexed = writer->IndexItems(
        collection, {item}, 1,
        [&](const v1::IndexResult& r) { item_ok = r.status().code() == 0; }, &position);
    const Clock::time_point acked = Clock::now();
    if (!indexed.ok() || !item_ok || position <= 0) {
      std::fprintf(stderr, "freshness_bench: write %d through %s failed: %s\n", n,
                   absl::GetFlag(FLAGS_writer).c_str(), indexed.error_message().c_str());
      return 1;
    }
    v1::GetRequest get;
    get.set_collection(collection);
    get.add_ids(item.id());
    get.set_min_position(position);
    v1::GetResponse got;
    const grpc::Status read = reader->Get(get, &got);
    const Clock::time_point visible = Clock::now();
    if (!read.ok() || got.results_size() != 1 || got.results(0).status().code() != 0) {
      std::fprintf(stderr, "freshness_bench: %s did not answer %s at position %lld: %s\n",
                   absl::GetFlag(FLAGS_reader).c_str(), item.id().c_str(),
                   static_cast<long long>(position), read.error_message().c_str());
      return 1;
    }
    freshness.push_back(Ms(visible - acked));
    get.set_min_position(0);
    const Clock::time_point before = Clock::now();
    if (!reader->Get(get, &got).ok()) return 1;
    round_trip.push_back(Ms(Clock::now() - before));
    std::this_thread::sleep_for(std::chrono::milliseconds(absl::GetFlag(FLAGS_interval_ms)));
  }
  std::printf("{\"writes\": %zu, %s, %s}\n", freshness.size(),
              Summary("freshness", freshness).c_str(), Summary("round_trip", round_trip).c_str());
  return 0;
}

}  // namespace
}  // namespace retrace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return retrace::Run();
}
