// search_params.h — what a decoding search needs to know besides the model: lengths, beams, rules.
//
// Thread-safety: a plain value.
//
//   SearchParams params;  params.max_new_tokens = 30;  params.num_beams = 3;
//   params.rules.eos_token_ids = {50118, 2};
#ifndef RETRACE_CORE_MODELS_DECODING_SEARCH_PARAMS_H_
#define RETRACE_CORE_MODELS_DECODING_SEARCH_PARAMS_H_

#include "core/models/decoding/logits_rules.h"

namespace retrace::models::decoding {

struct SearchParams {
  int max_new_tokens = 30;      // REQUIRES >= 1
  int num_beams = 1;            // beam search only; REQUIRES >= 1
  float length_penalty = 1.0f;  // beam search only: score = sum of log-probs / length^penalty
  LogitsRules rules;            // also holds the EOS ids that end a sequence
};

}  // namespace retrace::models::decoding

#endif  // RETRACE_CORE_MODELS_DECODING_SEARCH_PARAMS_H_
