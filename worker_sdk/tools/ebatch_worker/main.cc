// ebatch-worker: a ready-made ElasticBatch worker for code in any language.
//
//   ebatch-worker -- python score.py           # one process per shard
//   ebatch-worker --persistent -- python serve.py   # one process for all shards
//
// Per shard, CMD runs through `sh -c` with the shard's records on stdin and
// SHARD_ID, SHARD_ATTEMPT, SHARD_SOURCE, SHARD_BEGIN, SHARD_END, SHARD_UNIT in
// its environment; its stdout becomes the shard's output (committed exactly
// once under PAI_OUTPUT_<CHANNEL>). A non-zero exit fails the shard, with the
// tail of its stderr as the error. With --persistent, one CMD serves every
// shard: one record per line in, one line out, in order (flush each line).
// Each CMD runs as our child in a process group of its own, guarded so that
// the whole group is stopped (SIGTERM, SIGKILL after --stop-grace) when we
// stop it or die, even by SIGKILL.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "child_process.h"
#include "command_line.h"
#include "elasticbatch/line_range_reader.h"
#include "elasticbatch/shard.h"
#include "elasticbatch/shard_output.h"
#include "elasticbatch/worker.h"
#include "logging.h"
#include "signal_watcher.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(bool, persistent, false,
          "Keep one CMD running across shards: one record per line in, one line out, in "
          "order; CMD must flush every line");
ABSL_FLAG(std::string, stop_grace, "",
          "SIGTERM to SIGKILL when CMD is stopped (or we die). Default: "
          "$ELASTICBATCH_STOP_GRACE (aimaster run sets half its own), else 5s");
ABSL_FLAG(uint32_t, prefetch, 1, "Shards fetched ahead of the one being processed");
ABSL_FLAG(std::string, master, "", "AIMaster HOST:PORT (default: $AIMASTER_ADDR)");
ABSL_FLAG(std::string, output_dir, "",
          "Where shard outputs are published (default: PAI_OUTPUT_<output channel>)");
ABSL_FLAG(
    std::string, input_root, "",
    "Root the shards' sources are relative to (default: PAI_INPUT_<input channel>)");
ABSL_FLAG(absl::Duration, stall_timeout, absl::Minutes(5),
          "--persistent: fail a shard when CMD answers nothing for this long");
ABSL_FLAG(absl::Duration, master_lost_timeout, absl::Minutes(10),
          "Give up when the master stays unreachable this long");

namespace elasticbatch::tools {
namespace {

constexpr size_t kInputChunk = 64 << 10;
constexpr size_t kStderrTail = 4 << 10;
constexpr absl::Duration kDefaultStopGrace = absl::Seconds(5);

std::atomic<bool> g_stopping{false};

// Reads a shard's records as newline-terminated lines.
class RecordSource {
 public:
  static absl::StatusOr<RecordSource> Open(const Shard& shard) {
    RecordSource s;
    if (shard.unit() == ShardUnit::kBytes) {
      auto reader = LineRangeReader::Open(shard.input_path(), shard.begin(), shard.end());
      if (!reader.ok()) return reader.status();
      s.reader_ = std::move(*reader);
    }
    return s;
  }
  // Appends up to about `bytes` of lines to `out`, counting them. False at end.
  absl::StatusOr<bool> Fill(std::string* out, size_t bytes, uint64_t* records) {
    if (reader_ == nullptr) return false;  // RECORDS shards: CMD reads by range
    while (out->size() < bytes) {
      absl::StatusOr<bool> more = reader_->Next(&line_);
      if (!more.ok()) return more.status();
      if (!*more) return false;
      out->append(line_);
      out->push_back('\n');
      ++*records;
    }
    return true;
  }
  uint64_t units_done() const { return reader_ ? reader_->units_done() : 0; }

 private:
  std::unique_ptr<LineRangeReader> reader_;
  std::string line_;
};

// The last bytes a command wrote to stderr (also forwarded to ours).
class StderrTail {
 public:
  void Add(const char* data, size_t n) {
    (void)!write(2, data, n);
    tail_.append(data, n);
    if (tail_.size() > kStderrTail) tail_.erase(0, tail_.size() - kStderrTail);
  }
  std::string Text() const { return tail_.empty() ? "(no stderr)" : tail_; }
  void Clear() { tail_.clear(); }

 private:
  std::string tail_;
};

std::vector<std::string> ShardEnv(const Shard& shard) {
  return {absl::StrCat("SHARD_ID=", shard.id()),
          absl::StrCat("SHARD_ATTEMPT=", shard.attempt()),
          absl::StrCat("SHARD_SOURCE=", shard.input_path()),
          absl::StrCat("SHARD_BEGIN=", shard.begin()),
          absl::StrCat("SHARD_END=", shard.end()),
          absl::StrCat("SHARD_UNIT=",
                       shard.unit() == ShardUnit::kBytes ? "bytes" : "records"),
          absl::StrCat("SHARD_OUTPUT_NAME=", shard.output_name())};
}

// Reads what is available from a non-blocking fd; false at EOF or error.
bool ReadSome(int fd, std::string* into) {
  char buf[64 << 10];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      into->append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
}

// Writes from `pending` at `*offset`; false when the reader is gone (EPIPE).
bool WriteSome(int fd, const std::string& pending, size_t* offset) {
  while (*offset < pending.size()) {
    ssize_t n = write(fd, pending.data() + *offset, pending.size() - *offset);
    if (n > 0) {
      *offset += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
  return true;
}

enum class Outcome { kCommitted, kLost, kFailed, kStopped };

class ShardRunner {
 public:
  ShardRunner(Worker* worker, std::string command, bool persistent,
              absl::Duration stop_grace)
      : worker_(worker),
        command_(std::move(command)),
        persistent_(persistent),
        stop_grace_(stop_grace) {}

  Outcome Run(Shard& shard) {
    auto out = ShardOutput::Open(shard, worker_->output_dir());
    if (!out.ok()) return Fail(shard, out.status());
    auto source = RecordSource::Open(shard);
    if (!source.ok()) return Fail(shard, source.status());
    absl::StatusOr<uint64_t> records = persistent_ ? PumpPersistent(shard, *source, **out)
                                                   : PumpOneShot(shard, *source, **out);
    if (g_stopping) return Outcome::kStopped;
    if (shard.cancelled()) {
      spdlog::info("shard {} attempt {}: lease lost, output discarded", shard.id(),
                   shard.attempt());
      return Outcome::kLost;
    }
    if (!records.ok()) return Fail(shard, records.status());
    shard.ReportProgress(*records, shard.end() - shard.begin());
    absl::Status committed = (*out)->Commit();
    if (committed.ok()) {
      spdlog::info("shard {} attempt {}: committed {} records", shard.id(),
                   shard.attempt(), *records);
      return Outcome::kCommitted;
    }
    if (absl::IsAborted(committed)) {
      spdlog::info("shard {}: {}", shard.id(), std::string(committed.message()));
      return Outcome::kLost;
    }
    spdlog::error("shard {}: commit failed: {}", shard.id(), committed.ToString());
    return Outcome::kFailed;
  }

 private:
  Outcome Fail(Shard& shard, const absl::Status& error) {
    spdlog::warn("shard {} attempt {} failed: {}", shard.id(), shard.attempt(),
                 std::string(error.message()));
    absl::Status s = shard.Fail(error);
    if (!s.ok()) spdlog::error("cannot report the failure: {}", s.ToString());
    return Outcome::kFailed;
  }

  // One CMD per shard: records on stdin, stdout is the output.
  absl::StatusOr<uint64_t> PumpOneShot(Shard& shard, RecordSource& source,
                                       ShardOutput& out) {
    auto child = ChildProcess::Start(command_, ShardEnv(shard), stop_grace_);
    if (!child.ok()) return child.status();
    ChildProcess& c = **child;
    stderr_.Clear();
    std::string pending, output, errors;
    size_t offset = 0;
    bool input_done = false;
    uint64_t records = 0;
    while (c.stdout_fd() >= 0 || c.stderr_fd() >= 0) {
      if (offset == pending.size() && !input_done && c.stdin_fd() >= 0) {
        pending.clear();
        offset = 0;
        absl::StatusOr<bool> more = source.Fill(&pending, kInputChunk, &records);
        if (!more.ok()) {
          c.Terminate();
          return more.status();
        }
        input_done = !*more;
      }
      if (input_done && offset == pending.size()) c.CloseStdin();
      if (!Poll(c, offset < pending.size())) break;
      if (c.stdin_fd() >= 0 && !WriteSome(c.stdin_fd(), pending, &offset)) {
        c.CloseStdin();  // CMD stopped reading; its exit status decides
        input_done = true;
        pending.clear();
        offset = 0;
      }
      if (c.stdout_fd() >= 0) {
        const bool open = ReadSome(c.stdout_fd(), &output);
        if (!output.empty()) {
          if (absl::Status s = out.Write(output); !s.ok()) {
            c.Terminate();
            return s;
          }
          output.clear();
        }
        if (!open) c.CloseStdout();
      }
      DrainStderr(c);
      // Records handed over, but no position: what a pipe swallows is not
      // what CMD has processed, so the master judges this shard by its age.
      shard.ReportProgress(records);
      if (shard.cancelled() || g_stopping) {
        c.Terminate();
        return absl::AbortedError("cancelled");
      }
    }
    const int code = *c.WaitUntil(absl::InfiniteFuture());
    if (code != 0) {
      return absl::InternalError(absl::StrCat("command exited with status ", code,
                                              "; stderr tail: ", stderr_.Text()));
    }
    return records;
  }

  // One CMD for all shards: a line in, a line out, in order.
  absl::StatusOr<uint64_t> PumpPersistent(Shard& shard, RecordSource& source,
                                          ShardOutput& out) {
    if (child_ == nullptr) {
      auto child = ChildProcess::Start(command_, {"PYTHONUNBUFFERED=1"}, stop_grace_);
      if (!child.ok()) return child.status();
      child_ = std::move(*child);
      partial_.clear();
      stderr_.Clear();
    }
    ChildProcess& c = *child_;
    std::string pending;
    size_t offset = 0;
    bool input_done = false;
    bool draining = false;  // cancelled: collect the answers owed, then stop
    uint64_t in = 0, fed = 0, answered = 0;
    absl::Time last_answer = absl::Now();
    const absl::Duration stall = absl::GetFlag(FLAGS_stall_timeout);
    while (!(input_done && offset == pending.size() && answered == in)) {
      if (offset == pending.size() && !input_done) {
        pending.clear();
        offset = 0;
        absl::StatusOr<bool> more = source.Fill(&pending, kInputChunk, &in);
        if (!more.ok()) return more.status();
        input_done = !*more;
        continue;
      }
      if (c.stdout_fd() < 0 || !Poll(c, offset < pending.size())) {
        return Restart(
            absl::StrCat("command exited in the middle of shard ", shard.id()));
      }
      if (offset < pending.size()) {
        const size_t before = offset;
        if (!WriteSome(c.stdin_fd(), pending, &offset)) {
          return Restart("command stopped reading its input");
        }
        fed += static_cast<uint64_t>(
            std::count(pending.begin() + before, pending.begin() + offset, '\n'));
      }
      const bool open = ReadSome(c.stdout_fd(), &partial_);
      size_t start = 0;
      for (size_t nl; (nl = partial_.find('\n', start)) != std::string::npos;
           start = nl + 1) {
        if (++answered > fed) {
          return Restart("command wrote more lines than it was given records");
        }
        if (!draining) {
          if (absl::Status s =
                  out.WriteLine(absl::string_view(partial_).substr(start, nl - start));
              !s.ok()) {
            return s;
          }
        }
        last_answer = absl::Now();
      }
      partial_.erase(0, start);
      DrainStderr(c);
      if (!open)
        return Restart(
            absl::StrCat("command exited in the middle of shard ", shard.id()));
      if (g_stopping || worker_->job_over()) return absl::AbortedError("stopping");
      if (!draining) shard.ReportProgress(answered, source.units_done());
      if (shard.cancelled() && !draining) {
        // Finish the line being written (CMD must see whole lines), feed
        // nothing more, and collect the answers still owed so they cannot
        // leak into the next shard's output.
        draining = true;
        if (offset > 0 && pending[offset - 1] != '\n') {
          pending.resize(pending.find('\n', offset) + 1);
        } else {
          pending.resize(offset);
        }
        in = fed + static_cast<uint64_t>(
                       std::count(pending.begin() + offset, pending.end(), '\n'));
        input_done = true;
      }
      if (answered < fed && absl::Now() - last_answer > stall) {
        return Restart(absl::StrCat("command answered nothing for ",
                                    absl::FormatDuration(stall),
                                    " (does it flush every output line?)"));
      }
    }
    if (draining) return absl::AbortedError("cancelled");
    return answered;
  }

  // The persistent command failed: kill it (a fresh one serves the next shard).
  absl::Status Restart(const std::string& why) {
    int code = child_->Terminate();
    DrainStderr(*child_);
    child_.reset();
    return absl::InternalError(
        absl::StrCat(why, " (exit status ", code, "); stderr tail: ", stderr_.Text()));
  }

  // Waits (briefly) until a pipe is ready; false when the command is gone.
  bool Poll(ChildProcess& c, bool want_write) {
    pollfd fds[3];
    int n = 0;
    if (want_write && c.stdin_fd() >= 0) fds[n++] = {c.stdin_fd(), POLLOUT, 0};
    if (c.stdout_fd() >= 0) fds[n++] = {c.stdout_fd(), POLLIN, 0};
    if (c.stderr_fd() >= 0) fds[n++] = {c.stderr_fd(), POLLIN, 0};
    if (n == 0) return false;
    int r = poll(fds, static_cast<nfds_t>(n), 200);
    return r >= 0 || errno == EINTR;
  }

  void DrainStderr(ChildProcess& c) {
    if (c.stderr_fd() < 0) return;
    std::string err;
    const bool open = ReadSome(c.stderr_fd(), &err);
    if (!err.empty()) stderr_.Add(err.data(), err.size());
    if (!open) c.CloseStderr();
  }

  Worker* worker_;
  std::string command_;
  bool persistent_;
  absl::Duration stop_grace_;
  std::unique_ptr<ChildProcess> child_;  // --persistent only
  std::string partial_;                  // --persistent: unterminated stdout
  StderrTail stderr_;
};

constexpr char kUsage[] =
    R"(ebatch-worker - a ready-made ElasticBatch worker for any language.

Usage: ebatch-worker [flags] -- CMD

For each shard, CMD runs through `sh -c` with the shard's records on stdin
(one per line) and SHARD_ID, SHARD_ATTEMPT, SHARD_SOURCE, SHARD_BEGIN,
SHARD_END, SHARD_UNIT, SHARD_OUTPUT_NAME in its environment; its stdout is
committed exactly once as the shard's output. A non-zero exit fails the shard
with the tail of its stderr. With --persistent one CMD serves all shards (one
line in, one line out, in order; flush each line, and read stdin line by
line: e.g. `python -u`, `mawk -W interactive`, `grep --line-buffered`).

Reads ELASTICBATCH_CONFIG, AIMASTER_ADDR and PAI_INPUT_*/PAI_OUTPUT_* like any
worker. Exit codes: 0 when the job is over, 1 when the master was lost, 2 for a
configuration error.

Flags:
)";

int Main(int argc, char** argv) {
  cli::BlockTerminationSignals();
  // Debian's Abseil checks every mutex acquisition for deadlock cycles; the
  // tests keep that check, production binaries skip its cost.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  cli::CommandLineParser parser;
  absl::StatusOr<cli::ParsedCommandLine> parsed = parser.Parse(argc, argv);
  if (!parsed.ok()) return cli::ReportUsageError("ebatch-worker", parsed.status());
  if (parsed->help) {
    std::cout << kUsage;
    cli::PrintFlags(std::cout, {"ebatch_worker/", "tools/cli/"});
    return cli::kExitOk;
  }
  if (absl::Status s = cli::InitLogging("ebatch-worker"); !s.ok()) {
    return cli::ReportUsageError("ebatch-worker", s);
  }
  if (parsed->after_dashes.empty() || !parsed->positional.empty()) {
    return cli::ReportUsageError(
        "ebatch-worker",
        absl::InvalidArgumentError("usage: ebatch-worker [flags] -- CMD"));
  }
  const std::string command = absl::StrJoin(parsed->after_dashes, " ");
  std::string grace_text = absl::GetFlag(FLAGS_stop_grace);
  std::string grace_source = "--stop-grace";
  if (grace_text.empty()) {
    const char* env = std::getenv("ELASTICBATCH_STOP_GRACE");
    grace_text = env != nullptr ? env : "";
    grace_source = "ELASTICBATCH_STOP_GRACE";
  }
  absl::Duration stop_grace = kDefaultStopGrace;
  if (!grace_text.empty() &&
      (!absl::ParseDuration(grace_text, &stop_grace) ||
       stop_grace < absl::ZeroDuration() || stop_grace == absl::InfiniteDuration())) {
    return cli::ReportUsageError(
        "ebatch-worker",
        absl::InvalidArgumentError(absl::StrCat(grace_source, ": '", grace_text,
                                                "' is not a duration like 5s or 500ms")));
  }
  WorkerOptions options;
  options.master_address = absl::GetFlag(FLAGS_master);
  options.prefetch = absl::GetFlag(FLAGS_prefetch);
  options.output_dir = absl::GetFlag(FLAGS_output_dir);
  options.input_root = absl::GetFlag(FLAGS_input_root);
  options.master_lost_timeout = absl::GetFlag(FLAGS_master_lost_timeout);
  absl::StatusOr<std::unique_ptr<Worker>> worker = Worker::FromEnvironment(options);
  if (!worker.ok()) {
    const absl::Status& s = worker.status();
    if (absl::IsFailedPrecondition(s)) {
      spdlog::info("not needed: {}", std::string(s.message()));
      return cli::kExitOk;
    }
    if (absl::IsInvalidArgument(s) || absl::IsNotFound(s)) {
      return cli::ReportUsageError("ebatch-worker", s);
    }
    spdlog::error("{}", s.ToString());
    return cli::kExitFailure;
  }
  cli::SignalWatcher signals([](int sig) {
    spdlog::warn("signal {}: stopping", sig);
    g_stopping = true;
  });
  ShardRunner runner(worker->get(), command, absl::GetFlag(FLAGS_persistent), stop_grace);
  uint64_t committed = 0;
  while (!g_stopping) {
    absl::StatusOr<std::optional<Shard>> shard = (*worker)->NextShard();
    if (!shard.ok()) {
      spdlog::error("{}", shard.status().ToString());
      return absl::IsFailedPrecondition(shard.status()) ? cli::kExitOk
                                                        : cli::kExitFailure;
    }
    if (!shard->has_value()) {
      spdlog::info("job over ({}): {}; {} shard(s) committed here",
                   (*worker)->job_succeeded() ? "succeeded" : "failed",
                   (*worker)->end_reason(), committed);
      return cli::kExitOk;
    }
    if (runner.Run(**shard) == Outcome::kCommitted) ++committed;
  }
  const int sig = signals.last_signal();
  return sig != 0 ? 128 + sig : cli::kExitFailure;
}

}  // namespace
}  // namespace elasticbatch::tools

int main(int argc, char** argv) { return elasticbatch::tools::Main(argc, argv); }
