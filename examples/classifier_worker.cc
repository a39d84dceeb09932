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

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "elasticbatch/pai_environment.h"
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

// Scores one shard into its output and publishes it. ABORTED: another
// attempt won or the lease was lost (the reader then ends early), and nothing
// was published.
absl::Status ScoreShard(elasticbatch::Shard& shard, const Model& model,
                        double threshold) {
  auto lines = shard.OpenLines();  // reports the shard's progress as it reads
  if (!lines.ok()) return lines.status();
  auto out = shard.OpenOutput();  // staged; published only by Commit()
  if (!out.ok()) return out.status();
  std::string line, id, text;
  while (true) {
    absl::StatusOr<bool> more = (*lines)->Next(&line);
    if (!more.ok()) return more.status();
    if (!*more) break;
    if (line.empty()) continue;
    if (!Field(line, "id", &id) || !Field(line, "text", &text)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("record %d of %s is not a {\"id\",\"text\"} object: %.80s",
                          (*lines)->records(), shard.input_path(), line));
    }
    const double score = model.Score(text);
    // A failed write (e.g. the disk is full) fails the shard, loudly.
    absl::Status written =
        (*out)->WriteLine(absl::StrFormat("{\"id\":%s,\"score\":%.4f,\"label\":%d}", id,
                                          score, score >= threshold ? 1 : 0));
    if (!written.ok()) return written;
  }
  return (*out)->Commit();
}

int Exit(const absl::Status& status, int code) {
  std::cerr << "example-classifier: " << status << "\n";
  return code;
}

}  // namespace

int main() {
  auto env = elasticbatch::PaiEnvironment::FromEnvironment();
  if (!env.ok()) return Exit(env.status(), 2);
  absl::StatusOr<double> threshold = env->GetDouble("threshold", 0.5);
  absl::StatusOr<int64_t> dim = env->GetInt("embedding_dim", 1024);
  absl::StatusOr<int64_t> seed = env->GetInt("seed", 7);
  for (const absl::Status& s : {threshold.status(), dim.status(), seed.status()}) {
    if (!s.ok()) return Exit(s, 2);
  }
  if (*dim < 1 || *dim > (1 << 20)) {
    return Exit(absl::InvalidArgumentError("embedding_dim must be within 1..1048576"), 2);
  }
  const Model model(static_cast<int>(*dim), static_cast<uint64_t>(*seed));

  auto worker = elasticbatch::Worker::FromEnvironment();
  // FAILED_PRECONDITION: a backup of this instance won the start race.
  if (!worker.ok())
    return Exit(worker.status(), absl::IsFailedPrecondition(worker.status()) ? 0 : 2);
  for (absl::StatusOr<elasticbatch::Shard>& shard : (*worker)->Shards()) {
    if (!shard.ok()) return Exit(shard.status(), 1);  // the master was lost
    absl::Status scored = ScoreShard(*shard, model, *threshold);
    if (!scored.ok() && !absl::IsAborted(scored)) {
      // Not published: another attempt redoes it, or it is quarantined.
      std::cerr << "example-classifier: " << scored << "\n";
      (void)shard->Fail(scored);
    }
  }
  return 0;
}
