#include "aimaster/core/request_limits.h"

#include "absl/strings/str_cat.h"

namespace elasticbatch::aimaster {

std::string CapText(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  return absl::StrCat("[", text.size() - max_bytes, " bytes cut] ",
                      text.substr(text.size() - max_bytes));
}

absl::Status CheckLeaseLists(const RequestLimits& limits,
                             std::initializer_list<size_t> leases, size_t published) {
  const size_t max = limits.max_leases_per_session;
  for (size_t n : leases) {
    if (n > max) {
      return absl::InvalidArgumentError(
          absl::StrCat("a list of ", n, " leases, more than a session may hold (", max,
                       ", --max-leases-per-session)"));
    }
  }
  if (published > 2 * max) {
    return absl::InvalidArgumentError(absl::StrCat(
        published, " confirmations, more than twice what a session may hold (", max,
        ", --max-leases-per-session)"));
  }
  return absl::OkStatus();
}

}  // namespace elasticbatch::aimaster
