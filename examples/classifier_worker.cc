// example-classifier: an ElasticBatch inference worker on the C++ SDK.
//
// The model is a hashed bag-of-words linear classifier: every word of a
// review's text gets a pseudo-random embedding (seeded by the word's hash),
// projected onto a fixed weight vector; the mean projection through a sigmoid
// is the score. It is deterministic, and its cost per record is real work
// that grows with `embedding_dim`.
//
// Run it as a worker (aimaster run ... -- example-classifier); it reads its
// place from ELASTICBATCH_CONFIG and AIMASTER_ADDR, and its hyperparameters
// from PAI_HPS / PAI_HPS_*:
//   threshold      score at or above which label = 1   (default 0.5)
//   embedding_dim  dimensions per word: the cost knob  (default 1024)
//   seed           model seed                          (default 7)
// Output per record: {"id":N,"score":0.1234,"label":1}
#include <cmath>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "elasticbatch/line_range_reader.h"
#include "elasticbatch/pai_environment.h"
#include "elasticbatch/shard_output.h"
#include "elasticbatch/worker.h"

namespace {

uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

uint64_t HashWord(const std::string& w) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : w) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

class Model {
 public:
  Model(int dim, uint64_t seed) : weights_(static_cast<size_t>(dim)) {
    for (int i = 0; i < dim; ++i)
      weights_[static_cast<size_t>(i)] = Uniform(Mix(seed + i));
  }

  double Score(const std::string& text) const {
    double total = 0;
    int words = 0;
    std::string word;
    for (size_t i = 0; i <= text.size(); ++i) {
      const bool end =
          i == text.size() || !absl::ascii_isalnum(static_cast<unsigned char>(text[i]));
      if (!end) {
        word.push_back(absl::ascii_tolower(static_cast<unsigned char>(text[i])));
        continue;
      }
      if (word.empty()) continue;
      // The word's embedding, generated on the fly, dotted with the weights.
      uint64_t state = HashWord(word);
      double dot = 0;
      for (double w : weights_) {
        state = Mix(state);
        dot += Uniform(state) * w;
      }
      total += dot;
      ++words;
      word.clear();
    }
    if (words == 0) return 0.5;
    const double z = total / std::sqrt(static_cast<double>(words * weights_.size())) * 4;
    return 1 / (1 + std::exp(-z));
  }

 private:
  static double Uniform(uint64_t bits) {
    return (bits >> 11) * (2.0 / 9007199254740992.0) - 1;
  }
  std::vector<double> weights_;
};

// The value of a top-level JSON field: a number verbatim, or a string's text.
bool Field(const std::string& json, const std::string& name, std::string* value) {
  const std::string key = "\"" + name + "\":";
  size_t at = json.find(key);
  if (at == std::string::npos) return false;
  at += key.size();
  while (at < json.size() && json[at] == ' ') ++at;
  value->clear();
  if (at < json.size() && json[at] == '"') {
    for (++at; at < json.size() && json[at] != '"'; ++at) {
      if (json[at] == '\\' && at + 1 < json.size()) ++at;
      value->push_back(json[at]);
    }
    return at < json.size();
  }
  while (at < json.size() && json[at] != ',' && json[at] != '}')
    value->push_back(json[at++]);
  return !value->empty();
}

}  // namespace

int main() {
  auto env = elasticbatch::PaiEnvironment::FromEnvironment();
  if (!env.ok()) {
    std::cerr << "example-classifier: " << env.status().message() << "\n";
    return 2;
  }
  auto get_double = [&](const char* name, double def) {
    return env->HasHyperparameter(name) ? env->GetDouble(name)
                                        : absl::StatusOr<double>(def);
  };
  auto get_int = [&](const char* name, int64_t def) {
    return env->HasHyperparameter(name) ? env->GetInt(name)
                                        : absl::StatusOr<int64_t>(def);
  };
  absl::StatusOr<double> threshold = get_double("threshold", 0.5);
  absl::StatusOr<int64_t> dim = get_int("embedding_dim", 1024);
  absl::StatusOr<int64_t> seed = get_int("seed", 7);
  for (const absl::Status& s : {threshold.status(), dim.status(), seed.status()}) {
    if (!s.ok()) {
      std::cerr << "example-classifier: " << s.message() << "\n";
      return 2;
    }
  }
  if (*dim < 1 || *dim > (1 << 20)) {
    std::cerr << "example-classifier: embedding_dim must be within 1..1048576\n";
    return 2;
  }
  const Model model(static_cast<int>(*dim), static_cast<uint64_t>(*seed));

  auto worker = elasticbatch::Worker::FromEnvironment();
  if (!worker.ok()) {
    std::cerr << "example-classifier: " << worker.status() << "\n";
    return absl::IsFailedPrecondition(worker.status()) ? 0 : 2;
  }
  std::string line, id, text;
  while (true) {
    auto next = (*worker)->NextShard();
    if (!next.ok()) {
      std::cerr << "example-classifier: " << next.status() << "\n";
      return 1;
    }
    if (!next->has_value()) break;
    elasticbatch::Shard& shard = **next;
    auto reader = elasticbatch::LineRangeReader::Open(shard.input_path(), shard.begin(),
                                                      shard.end());
    if (!reader.ok()) {
      (void)shard.Fail(reader.status());
      continue;
    }
    auto out = elasticbatch::ShardOutput::Open(shard, (*worker)->output_dir());
    if (!out.ok()) {
      (void)shard.Fail(out.status());
      continue;
    }
    absl::Status failure;
    while (!shard.cancelled()) {
      absl::StatusOr<bool> more = (*reader)->Next(&line);
      if (!more.ok()) {
        failure = more.status();
        break;
      }
      if (!*more) break;
      if (line.empty()) continue;
      if (!Field(line, "id", &id) || !Field(line, "text", &text)) {
        failure = absl::InvalidArgumentError(
            absl::StrFormat("record %d of %s is not a {\"id\",\"text\"} object: %.80s",
                            (*reader)->records(), shard.input_path(), line));
        break;
      }
      const double score = model.Score(text);
      failure =
          (*out)->WriteLine(absl::StrFormat("{\"id\":%s,\"score\":%.4f,\"label\":%d}", id,
                                            score, score >= *threshold ? 1 : 0));
      if (!failure.ok()) break;  // e.g. the disk is full: the shard fails, loudly
      shard.ReportProgress((*reader)->records(), (*reader)->units_done());
    }
    if (shard.cancelled()) continue;  // a duplicate won; the output is discarded
    if (!failure.ok()) {
      (void)shard.Fail(failure);
      continue;
    }
    absl::Status committed = (*out)->Commit();
    if (!committed.ok() && !absl::IsAborted(committed)) {
      // Not published (e.g. the final flush failed): let another attempt redo it.
      std::cerr << "example-classifier: " << committed << "\n";
      (void)shard.Fail(committed);
    }
  }
  return 0;
}
