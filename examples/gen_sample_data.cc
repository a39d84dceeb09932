// gen-sample-data: deterministic JSONL review texts for demos and benchmarks.
//
//   gen-sample-data --out DIR --files 8 --records 20000 --seed 1
//
// Writes DIR/reviews-00000.jsonl ... with {"id":N,"text":"..."} per line;
// the same flags always produce the same bytes.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/cli/command_line.h"

ABSL_FLAG(std::string, out, "", "Directory to write the files into (created)");
ABSL_FLAG(int32_t, files, 8, "Number of files");
ABSL_FLAG(int64_t, records, 20000, "Records in all, spread over the files");
ABSL_FLAG(uint32_t, seed, 1, "Random seed");
ABSL_FLAG(int32_t, min_words, 5, "Fewest words per text");
ABSL_FLAG(int32_t, max_words, 60, "Most words per text");

namespace {

const char* const kWords[] = {
    "good",      "great",    "excellent", "love",         "perfect",  "fast",
    "reliable",  "happy",    "bad",       "poor",         "terrible", "hate",
    "broken",    "slow",     "refund",    "disappointed", "the",      "a",
    "it",        "this",     "product",   "service",      "was",      "is",
    "and",       "but",      "very",      "not",          "really",   "quite",
    "delivery",  "price",    "quality",   "support",      "would",    "buy",
    "again",     "never",    "always",    "works",        "battery",  "screen",
    "size",      "color",    "arrived",   "late",         "early",    "box",
    "package",   "customer", "team",      "helpful",      "rude",     "cheap",
    "expensive", "value",    "money",     "recommend",    "friends",  "family"};
constexpr int kWordCount = sizeof(kWords) / sizeof(kWords[0]);

}  // namespace

int main(int argc, char** argv) {
  namespace cli = elasticbatch::cli;
  cli::CommandLineParser parser;
  auto parsed = parser.Parse(argc, argv);
  if (!parsed.ok()) return cli::ReportUsageError("gen-sample-data", parsed.status());
  if (parsed->help) {
    std::cout << "gen-sample-data: deterministic JSONL sample data\n\nFlags:\n";
    cli::PrintFlags(std::cout, {"gen_sample_data"});
    return 0;
  }
  const std::string out = absl::GetFlag(FLAGS_out);
  const int32_t files = absl::GetFlag(FLAGS_files);
  const int64_t records = absl::GetFlag(FLAGS_records);
  const int32_t min_words = absl::GetFlag(FLAGS_min_words);
  const int32_t max_words = absl::GetFlag(FLAGS_max_words);
  if (out.empty() || files < 1 || records < 0 || min_words < 1 || max_words < min_words) {
    return cli::ReportUsageError(
        "gen-sample-data",
        absl::InvalidArgumentError("need --out, --files >= 1, --records >= 0 and "
                                   "1 <= --min-words <= --max-words"));
  }
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec) {
    std::cerr << "gen-sample-data: cannot create " << out << ": " << ec.message() << "\n";
    return 2;
  }
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed));
  int64_t id = 0;
  for (int32_t f = 0; f < files; ++f) {
    const std::string path = absl::StrFormat("%s/reviews-%05d.jsonl", out, f);
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    const int64_t here = records / files + (f < records % files ? 1 : 0);
    std::string line;
    for (int64_t r = 0; r < here; ++r, ++id) {
      line = absl::StrCat("{\"id\":", id, ",\"text\":\"");
      const int64_t words =
          min_words + static_cast<int64_t>(rng() % (max_words - min_words + 1));
      for (int64_t w = 0; w < words; ++w) {
        absl::StrAppend(&line, w == 0 ? "" : " ", kWords[rng() % kWordCount]);
      }
      absl::StrAppend(&line, "\"}\n");
      file << line;
    }
    if (!file) {
      std::cerr << "gen-sample-data: cannot write " << path << "\n";
      return 1;
    }
  }
  std::cout << "wrote " << id << " records in " << files << " files to " << out << "\n";
  return 0;
}
