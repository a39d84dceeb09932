#include "bench/bench_util.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/cli/command_line.h"

namespace elasticbatch::bench {
namespace {

std::string ProcPath(pid_t pid, const char* file) {
  return pid == 0 ? absl::StrCat("/proc/self/", file)
                  : absl::StrCat("/proc/", pid, "/", file);
}

// "12.3 ms", "+1.2 MB", ">= 0.950", "1 restart(s)": a cell that leads with a number.
bool LooksLikeAFigure(const std::string& cell) {
  size_t i = cell.find_first_not_of("<>=+- ");
  return i != std::string::npos && (std::isdigit(static_cast<unsigned char>(cell[i])) ||
                                    (cell[i] == '.' && i + 1 < cell.size()));
}

}  // namespace

std::optional<int> ParseFlags(int argc, char** argv, const std::string& program,
                              const std::string& usage) {
  cli::CommandLineParser parser;
  absl::StatusOr<cli::ParsedCommandLine> parsed = parser.Parse(argc, argv);
  if (!parsed.ok()) return cli::ReportUsageError(program, parsed.status());
  if (parsed->help) {
    std::cout << usage << "\n\nFlags:\n";
    cli::PrintFlags(std::cout, {"bench/"});
    return cli::kExitOk;
  }
  if (!parsed->positional.empty() || !parsed->after_dashes.empty()) {
    return cli::ReportUsageError(
        program,
        absl::InvalidArgumentError(absl::StrCat(
            "unexpected argument '",
            parsed->positional.empty() ? parsed->after_dashes[0] : parsed->positional[0],
            "' (see --help)")));
  }
  return std::nullopt;
}

std::string BinDir(const std::string& flag, const char* argv0) {
  std::filesystem::path dir = flag;
  if (dir.empty()) {
    // This program's own directory, also when it was found through PATH.
    std::error_code error;
    const std::filesystem::path self =
        std::filesystem::read_symlink("/proc/self/exe", error);
    dir = error ? std::filesystem::path(argv0).parent_path() : self.parent_path();
  }
  if (dir.empty()) dir = ".";
  std::string out = std::filesystem::absolute(dir).lexically_normal().string();
  if (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

std::string Mb(uint64_t bytes) { return absl::StrFormat("%.1f MB", bytes / 1e6); }

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
  // An empty row ends a table: each table has its own column widths and a
  // rule under its first (header) row.
  size_t block_start = 0;
  bool printed_a_table = false;
  for (; block_start < rows_.size();) {
    size_t block_end = block_start;
    while (block_end < rows_.size() && !rows_[block_end].empty()) ++block_end;
    if (block_end == block_start) {  // several empty rows in a row
      ++block_start;
      continue;
    }
    if (printed_a_table) std::cout << "\n";
    printed_a_table = true;
    std::vector<size_t> widths;
    for (size_t r = block_start; r < block_end; ++r) {
      widths.resize(std::max(widths.size(), rows_[r].size()), 0);
      for (size_t i = 0; i < rows_[r].size(); ++i)
        widths[i] = std::max(widths[i], rows_[r][i].size());
    }
    // Figures are right-aligned; the first column and columns of words are
    // left-aligned.
    std::vector<bool> left(widths.size(), true);
    for (size_t r = block_start + 1; r < block_end; ++r) {
      for (size_t i = 1; i < rows_[r].size(); ++i) {
        if (LooksLikeAFigure(rows_[r][i])) left[i] = false;
      }
    }
    for (size_t r = block_start; r < block_end; ++r) {
      std::string line;
      for (size_t i = 0; i < rows_[r].size(); ++i) {
        // Two literal formats, not one chosen at run time: clang checks
        // StrFormat's format at compile time and rejects a non-constant one.
        absl::StrAppend(&line, i == 0 ? "" : "  ",
                        left[i] ? absl::StrFormat("%-*s", widths[i], rows_[r][i])
                                : absl::StrFormat("%*s", widths[i], rows_[r][i]));
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      std::cout << line << "\n";
      if (r == block_start) {
        size_t total = 0;
        for (size_t w : widths) total += w + 2;
        std::cout << std::string(total - 2, '-') << "\n";
      }
    }
    block_start = block_end + 1;
  }
  std::string json = absl::StrCat("{\"bench\":\"", bench_, "\"");
  for (const auto& [k, v] : figures_)
    absl::StrAppend(&json, ",\"", k, "\":", absl::StrFormat("%.6g", v));
  std::cout << json << "}" << std::endl;
}

}  // namespace elasticbatch::bench
