// args: the small command-line parser of the `retrace` CLI.
//
// Long options only: "--name value", "--name=value" and value-less flags "--name"; "-h" is
// "--help" where "help" is an option; "--" ends the options; everything else is positional.
// An option not in the command's list is an error, so every command rejects typos the same way.
// Plain functions and values; safe to use from any thread.
//
// Example:
//   auto parsed = ParseArgs(args, {{"collection", true}, {"json", false}});
//   if (parsed.ok()) collection = parsed->Value("collection");
#ifndef RETRACE_CLIENT_CLI_ARGS_H_
#define RETRACE_CLIENT_CLI_ARGS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace retrace::cli {

// OptionSpec: one option a command accepts. `name` has no leading dashes.
struct OptionSpec {
  std::string name;
  bool takes_value = true;
};

// ParsedArgs: the options given (the last value wins when one is repeated) and the positional
// arguments, in order.
class ParsedArgs {
 public:
  // Has: whether option `name` was given.
  bool Has(absl::string_view name) const { return values_.count(std::string(name)) > 0; }
  // Value: the value given for `name`, or `fallback` when it was not given ("" for flags).
  std::string Value(absl::string_view name, std::string fallback = "") const;
  // Values: every value given for a repeatable option `name`, in order.
  std::vector<std::string> Values(absl::string_view name) const;
  // positional: the arguments that are not options, in order.
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  friend absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>&,
                                              const std::vector<OptionSpec>&, bool);
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> all_values_;
  std::vector<std::string> positional_;
};

// ParseArgs: parses `args` against `options`. A value option takes the next argument unless that
// one starts with "--" (write "--text=--x" for such a value). With `stop_at_positional`, parsing
// ends at the first positional argument, which with all that follow it goes to positional()
// unparsed: global options stop at the command name. Returns INVALID_ARGUMENT with a message
// for the user: "unknown option --x", "option --x needs a value", "option --x takes no value".
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<OptionSpec>& options,
                                     bool stop_at_positional = false);

// ParseInt: `value`, given for option `name`, as an integer in [min, max]; INVALID_ARGUMENT
// "--name: expected an integer from min to max, got 'value'" otherwise.
absl::StatusOr<int64_t> ParseInt(const std::string& name, const std::string& value, int64_t min,
                                 int64_t max);

// ParseFloat: `value`, given for option `name`, as a finite number in [min, max];
// INVALID_ARGUMENT "--name: expected a number from min to max, got 'value'" otherwise.
absl::StatusOr<double> ParseFloat(const std::string& name, const std::string& value, double min,
                                  double max);

// ParsePositiveSeconds: `value`, given for option `name`, as a finite number of seconds > 0
// (fractions allowed); INVALID_ARGUMENT otherwise.
absl::StatusOr<double> ParsePositiveSeconds(const std::string& name, const std::string& value);

// ParseFloatList: a comma-separated list of finite floats, e.g. "0.1,-2,3e-4"; INVALID_ARGUMENT
// naming option `name` and the bad element when one is empty, malformed or not finite.
absl::StatusOr<std::vector<float>> ParseFloatList(const std::string& name,
                                                  const std::string& value);

}  // namespace retrace::cli

#endif  // RETRACE_CLIENT_CLI_ARGS_H_
