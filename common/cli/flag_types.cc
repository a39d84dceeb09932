#include "common/cli/flag_types.h"

#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace elasticbatch::cli {

bool AbslParseFlag(absl::string_view text, ByteSize* out, std::string* error) {
  absl::string_view t = absl::StripAsciiWhitespace(text);
  size_t digits = 0;
  while (digits < t.size() &&
         absl::ascii_isdigit(static_cast<unsigned char>(t[digits]))) {
    ++digits;
  }
  uint64_t value = 0;
  if (digits == 0 || !absl::SimpleAtoi(t.substr(0, digits), &value)) {
    *error = "expected a byte count such as 4194304, 4MiB or 4M";
    return false;
  }
  const std::string lowered = absl::AsciiStrToLower(t.substr(digits));
  absl::string_view suffix = lowered;
  if (!absl::ConsumeSuffix(&suffix, "ib")) absl::ConsumeSuffix(&suffix, "b");
  int shift = 0;
  if (suffix.empty()) {
    shift = 0;
  } else if (suffix == "k") {
    shift = 10;
  } else if (suffix == "m") {
    shift = 20;
  } else if (suffix == "g") {
    shift = 30;
  } else if (suffix == "t") {
    shift = 40;
  } else {
    *error = absl::StrCat("unknown unit '", t.substr(digits), "' (use K, M, G or T)");
    return false;
  }
  if (shift > 0 && value > (std::numeric_limits<uint64_t>::max() >> shift)) {
    *error = "byte count too large";
    return false;
  }
  out->bytes = value << shift;
  return true;
}

std::string AbslUnparseFlag(ByteSize size) {
  const uint64_t b = size.bytes;
  if (b != 0 && b % (1ull << 30) == 0) return absl::StrCat(b >> 30, "GiB");
  if (b != 0 && b % (1ull << 20) == 0) return absl::StrCat(b >> 20, "MiB");
  if (b != 0 && b % (1ull << 10) == 0) return absl::StrCat(b >> 10, "KiB");
  return absl::StrCat(b);
}

}  // namespace elasticbatch::cli
