#include "core/models/decoding/beam_search.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "core/common/status_macros.h"

namespace retrace::models::decoding {
namespace {

struct Beam {
  std::vector<int64_t> sequence;  // start tokens, then generated ones
  double score = 0;               // sum of the generated tokens' log-probabilities
};

struct Hypothesis {
  std::vector<int64_t> generated;
  double score = 0;  // normalised by length
};

// Hypotheses keeps an image's K best finished hypotheses.
class Hypotheses {
 public:
  explicit Hypotheses(size_t capacity) : capacity_(capacity) {}

  void Add(std::vector<int64_t> generated, double sum_logprobs, double length_penalty) {
    const double length = static_cast<double>(std::max<size_t>(1, generated.size()));
    const double score = sum_logprobs / std::pow(length, length_penalty);
    if (full() && score <= Worst()) return;
    list_.push_back({std::move(generated), score});
    if (list_.size() > capacity_) {
      list_.erase(std::min_element(list_.begin(), list_.end(), ByScore));
    }
  }

  bool full() const { return list_.size() >= capacity_; }
  double Worst() const { return std::min_element(list_.begin(), list_.end(), ByScore)->score; }

  // Best returns the highest-scoring hypothesis (the earlier on ties), or nothing if empty.
  std::vector<int64_t> Best() const {
    if (list_.empty()) return {};
    const Hypothesis* best = &list_[0];
    for (const Hypothesis& h : list_) {
      if (h.score > best->score) best = &h;
    }
    return best->generated;
  }

 private:
  static bool ByScore(const Hypothesis& a, const Hypothesis& b) { return a.score < b.score; }

  size_t capacity_;
  std::vector<Hypothesis> list_;
};

struct Candidate {
  double score;
  size_t beam;
  int64_t token;
};

// TopTokens returns the `count` best finite entries of a log-probability row, best first (lower
// ids first on ties).
std::vector<int64_t> TopTokens(const float* logprobs, size_t vocab, size_t count,
                               std::vector<int64_t>& scratch) {
  scratch.resize(vocab);
  std::iota(scratch.begin(), scratch.end(), 0);
  count = std::min(count, vocab);
  auto better = [logprobs](int64_t a, int64_t b) {
    return logprobs[a] > logprobs[b] || (logprobs[a] == logprobs[b] && a < b);
  };
  std::partial_sort(scratch.begin(), scratch.begin() + count, scratch.end(), better);
  std::vector<int64_t> top;
  for (size_t i = 0; i < count; ++i) {
    if (std::isinf(logprobs[scratch[i]])) break;
    top.push_back(scratch[i]);
  }
  return top;
}

}  // namespace

absl::StatusOr<std::vector<std::vector<int64_t>>> BeamSearch(NextTokenModel& model, size_t batch,
                                                             const std::vector<int64_t>& start,
                                                             const SearchParams& params) {
  if (batch == 0) return std::vector<std::vector<int64_t>>{};
  const size_t k = static_cast<size_t>(std::max(1, params.num_beams));
  const std::vector<int64_t>& eos = params.rules.eos_token_ids;
  auto is_eos = [&eos](int64_t t) { return std::find(eos.begin(), eos.end(), t) != eos.end(); };

  // live[i]: image i's beams, whose model rows are consecutive in image order; empty once done.
  std::vector<std::vector<Beam>> live(batch);
  for (auto& beams : live) beams.push_back({start, 0.0});
  std::vector<Hypotheses> finished(batch, Hypotheses(k));
  std::vector<int64_t> scratch;

  RETRACE_ASSIGN_OR_RETURN(Tensor logits, model.Start(start));
  for (int step = 0; step < params.max_new_tokens; ++step) {
    const size_t vocab = static_cast<size_t>(logits.shape[1]);
    const size_t generated = static_cast<size_t>(step) + 1;  // after this step's token
    std::vector<size_t> parents;
    std::vector<int64_t> tokens;
    size_t row = 0;  // the model row of the current beam
    for (size_t image = 0; image < batch; ++image) {
      std::vector<Beam>& beams = live[image];
      std::vector<Candidate> candidates;
      const size_t first_row = row;
      for (size_t b = 0; b < beams.size(); ++b, ++row) {
        float* scores = logits.f32.data() + row * vocab;
        ApplyLogitsRules(params.rules, beams[b].sequence, static_cast<size_t>(step), scores, vocab);
        LogSoftmax(scores, vocab);
        for (int64_t token : TopTokens(scores, vocab, 2 * k, scratch)) {
          candidates.push_back({beams[b].score + scores[token], b, token});
        }
      }
      if (beams.empty()) continue;
      std::stable_sort(candidates.begin(), candidates.end(),
                       [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
      std::vector<Beam> next;
      for (size_t rank = 0; rank < candidates.size() && next.size() < k; ++rank) {
        const Candidate& c = candidates[rank];
        const Beam& parent = beams[c.beam];
        if (is_eos(c.token)) {
          if (rank >= k) continue;
          std::vector<int64_t> hypothesis(parent.sequence.begin() + start.size(),
                                          parent.sequence.end());
          hypothesis.push_back(c.token);  // counted in the length; dropped from the result
          finished[image].Add(std::move(hypothesis), c.score, params.length_penalty);
          continue;
        }
        Beam beam{parent.sequence, c.score};
        beam.sequence.push_back(c.token);
        next.push_back(std::move(beam));
        parents.push_back(first_row + c.beam);
        tokens.push_back(c.token);
      }
      const bool last_step = step + 1 == params.max_new_tokens;
      bool done = next.empty();
      if (!done && finished[image].full()) {
        const double best_live = next[0].score / std::pow(static_cast<double>(generated),
                                                          params.length_penalty);
        done = finished[image].Worst() >= best_live;
      }
      if (last_step && !done) {
        for (Beam& beam : next) {
          std::vector<int64_t> hypothesis(beam.sequence.begin() + start.size(), beam.sequence.end());
          finished[image].Add(std::move(hypothesis), beam.score, params.length_penalty);
        }
      }
      if (done || last_step) {
        parents.resize(parents.size() - next.size());
        tokens.resize(tokens.size() - next.size());
        next.clear();
      }
      beams = std::move(next);
    }
    if (parents.empty()) break;
    RETRACE_ASSIGN_OR_RETURN(logits, model.Advance(parents, tokens));
  }

  std::vector<std::vector<int64_t>> results;
  results.reserve(batch);
  for (const Hypotheses& h : finished) {
    std::vector<int64_t> best = h.Best();
    if (!best.empty() && is_eos(best.back())) best.pop_back();
    results.push_back(std::move(best));
  }
  return results;
}

}  // namespace retrace::models::decoding
