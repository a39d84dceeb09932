#include "bench_util.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace elasticbatch::bench {
namespace {

std::string ProcPath(pid_t pid, const char* file) {
  return pid == 0 ? absl::StrCat("/proc/self/", file)
                  : absl::StrCat("/proc/", pid, "/", file);
}

}  // namespace

uint64_t RssBytes(pid_t pid) {
  std::ifstream in(ProcPath(pid, "statm"));
  uint64_t size = 0, resident = 0;
  in >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

double CpuSeconds(pid_t pid) {
  std::ifstream in(ProcPath(pid, "stat"));
  std::string content((std::istreambuf_iterator<char>(in)),
                      std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces) start after ')'.
  const size_t close = content.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(content.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

void Report::Print() const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], row[i].size());
  }
  for (size_t r = 0; r < rows_.size(); ++r) {
    std::string line;
    for (size_t i = 0; i < rows_[r].size(); ++i) {
      absl::StrAppend(&line, i == 0 ? "" : "  ",
                      absl::StrFormat(i == 0 ? "%-*s" : "%*s", widths[i], rows_[r][i]));
    }
    std::cout << line << "\n";
    if (r == 0) {
      size_t total = 0;
      for (size_t w : widths) total += w + 2;
      std::cout << std::string(total - 2, '-') << "\n";
    }
  }
  std::string json = absl::StrCat("{\"bench\":\"", bench_, "\"");
  for (const auto& [k, v] : figures_)
    absl::StrAppend(&json, ",\"", k, "\":", absl::StrFormat("%.6g", v));
  std::cout << json << "}" << std::endl;
}

}  // namespace elasticbatch::bench
