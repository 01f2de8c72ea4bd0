#include "client/cli/args.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace retrace::cli {

std::string ParsedArgs::Value(absl::string_view name, std::string fallback) const {
  auto it = values_.find(std::string(name));
  return it == values_.end() ? fallback : it->second;
}

std::vector<std::string> ParsedArgs::Values(absl::string_view name) const {
  auto it = all_values_.find(std::string(name));
  return it == all_values_.end() ? std::vector<std::string>{} : it->second;
}

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<OptionSpec>& options,
                                     bool stop_at_positional) {
  auto find = [&](absl::string_view name) -> const OptionSpec* {
    for (const OptionSpec& spec : options) {
      if (spec.name == name) return &spec;
    }
    return nullptr;
  };
  ParsedArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg == "--") {
      parsed.positional_.insert(parsed.positional_.end(), args.begin() + i + 1, args.end());
      break;
    }
    if (arg == "-h" && find("help") != nullptr) arg = "--help";
    if (arg.size() < 2 || arg[0] != '-') {  // a positional argument, "-" included
      if (stop_at_positional) {
        parsed.positional_.insert(parsed.positional_.end(), args.begin() + i, args.end());
        break;
      }
      parsed.positional_.push_back(arg);
      continue;
    }
    if (arg[1] != '-') return absl::InvalidArgumentError(absl::StrCat("unknown option ", arg));
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const OptionSpec* spec = find(name);
    if (spec == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown option --", name));
    if (!spec->takes_value) {
      if (eq != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("option --", name, " takes no value"));
      }
      parsed.values_[name] = "";
    } else if (eq != std::string::npos) {
      parsed.values_[name] = arg.substr(eq + 1);
      parsed.all_values_[name].push_back(parsed.values_[name]);
    } else if (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) {
      parsed.values_[name] = args[++i];
      parsed.all_values_[name].push_back(parsed.values_[name]);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("option --", name, " needs a value"));
    }
  }
  return parsed;
}

absl::StatusOr<int64_t> ParseInt(const std::string& name, const std::string& value, int64_t min,
                                 int64_t max) {
  int64_t n;
  if (!absl::SimpleAtoi(value, &n) || n < min || n > max) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": expected an integer from ", min,
                                                   " to ", max, ", got '", value, "'"));
  }
  return n;
}

absl::StatusOr<double> ParseFloat(const std::string& name, const std::string& value, double min,
                                  double max) {
  double v;
  if (!absl::SimpleAtod(value, &v) || !std::isfinite(v) || v < min || v > max) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": expected a number from ", min,
                                                   " to ", max, ", got '", value, "'"));
  }
  return v;
}

absl::StatusOr<double> ParsePositiveSeconds(const std::string& name, const std::string& value) {
  double seconds;
  if (!absl::SimpleAtod(value, &seconds) || !std::isfinite(seconds) || seconds <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, ": expected a number of seconds greater than 0, got '", value, "'"));
  }
  return seconds;
}

absl::StatusOr<std::vector<float>> ParseFloatList(const std::string& name,
                                                  const std::string& value) {
  std::vector<float> values;
  for (absl::string_view part : absl::StrSplit(value, ',')) {
    float v;
    if (!absl::SimpleAtof(part, &v) || !std::isfinite(v)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, ": element ", values.size() + 1,
                                                     " is not a finite number: '", part, "'"));
    }
    values.push_back(v);
  }
  return values;
}

}  // namespace retrace::cli
