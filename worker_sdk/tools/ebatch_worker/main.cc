// ebatch-worker: a ready-made ElasticBatch worker for code in any language.
//
//   ebatch-worker -- python score.py                  # one process per shard
//   ebatch-worker --persistent -- python -u serve.py  # one process for all shards
//
// Per shard, CMD runs through `sh -c` with the shard's records on stdin and
// SHARD_ID, SHARD_ATTEMPT, SHARD_SOURCE, SHARD_BEGIN, SHARD_END, SHARD_UNIT in
// its environment; its stdout becomes the shard's output (committed exactly
// once under PAI_OUTPUT_<CHANNEL>). A non-zero exit fails the shard, with the
// tail of its stderr as the error.
//
// --persistent: one CMD serves every shard, and this protocol keeps a wrong
// answer from landing silently in the wrong record's place:
//  * CMD starts at once, while this worker registers, so its model load is
//    start-up time the master sees (slow starters get a backup). With
//    --ready-line TEXT we register only once CMD printed TEXT on a line of
//    its own; stdout lines before it are banners, copied to stderr.
//  * Then stdout carries answers only: one line per record, in order, each
//    flushed; logs go to stderr.
//  * A stdout line while no record is outstanding (before a shard's first
//    record, after its last answer, between shards) fails the shard, naming
//    the line. Any error mid-shard (that one, a failed write, a stall, CMD
//    exiting) fails the shard and restarts CMD with fresh state.
//  * --framing=index (the default): record n goes out as "<n>\t<record>", its
//    answer must come back as "<n>\t<answer>" (n counts from 0 over CMD's
//    life), the prefix is stripped, and any mismatch fails the shard: no
//    shift can pass, whatever else reaches CMD's stdout.
//  * --framing=lines (plain lines, for commands that cannot echo a number): a
//    stray line while records are outstanding is taken for an answer, and
//    caught only once the surplus answer arrives while none is owed: usually
//    before the shard commits, but a late last answer can miss that check
//    (the next shard then fails, naming this one as possibly shifted).
//  CMD sees the choice in EBATCH_FRAMING ("index" or "lines").
// Each CMD runs as our child in a process group of its own, guarded
// (process::GuardedCommand): its whole group is stopped (SIGTERM, SIGKILL
// after --stop-grace) when we stop it and when we die, even by SIGKILL.
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/cli/command_line.h"
#include "common/cli/logging.h"
#include "common/cli/signal_watcher.h"
#include "common/rpc/client_channel.h"
#include "elasticbatch/environment_contract.h"
#include "elasticbatch/line_range_reader.h"
#include "elasticbatch/shard.h"
#include "elasticbatch/shard_output.h"
#include "elasticbatch/worker.h"
#include "spdlog/spdlog.h"
#include "worker_sdk/tools/ebatch_worker/child_process.h"

ABSL_FLAG(bool, persistent, false,
          "Keep one CMD running across shards, started at once: one record per line "
          "in, one answer line out, in order, each flushed; stdout carries answers "
          "only (see --ready-line, --framing)");
ABSL_FLAG(std::string, ready_line, "",
          "--persistent: register with the master only after CMD printed this line "
          "on stdout (lines before it are start-up banners, copied to stderr). "
          "Default: none, CMD must print nothing before its first answer");
ABSL_FLAG(absl::Duration, ready_timeout, absl::Minutes(10),
          "--ready-line: give up (exit 1) when CMD has not printed the ready line "
          "after this long");
ABSL_FLAG(std::string, framing, "",
          "--persistent: 'index' (record n is sent as '<n>\\t<record>', its answer must "
          "come back as '<n>\\t<answer>': no shift can pass) or 'lines' (plain lines; a "
          "stray stdout line is caught only if it arrives while no answer is owed). "
          "CMD sees it in EBATCH_FRAMING. Default: index");
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
          "--persistent: fail a shard when CMD answers nothing for this long (a "
          "model load without --ready-line counts: it happens during the first shard)");
ABSL_FLAG(absl::Duration, master_lost_timeout, absl::Minutes(10),
          "Give up when the master stays unreachable this long");

namespace elasticbatch::tools {
namespace {

constexpr size_t kInputChunk = 64 << 10;
constexpr size_t kStderrTail = 4 << 10;
constexpr size_t kShownBytes = 200;
constexpr absl::Duration kDefaultStopGrace = absl::Seconds(5);
// How often loops that wait look at stop requests and cancellations.
constexpr int kPollMs = 200;

std::atomic<bool> g_stopping{false};

enum class Framing { kLines, kIndex };

struct Config {
  std::string command;
  bool persistent = false;
  std::string ready_line;  // empty: none
  absl::Duration ready_timeout;
  Framing framing = Framing::kLines;
  absl::Duration stop_grace;
  absl::Duration stall_timeout;
};

// A line quoted for an error message: its first 200 bytes, C-escaped.
std::string Shown(absl::string_view line) {
  std::string out =
      absl::StrCat("\"", absl::CHexEscape(line.substr(0, kShownBytes)), "\"");
  if (line.size() > kShownBytes) absl::StrAppend(&out, "... (", line.size(), " bytes)");
  return out;
}

// Wakes a poll() from other threads (signals, a call that returned). Level
// triggered: stays readable until Clear().
class Wakeup {
 public:
  Wakeup() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~Wakeup() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }
  void Notify() {
    const uint64_t one = 1;
    (void)!write(fd_, &one, sizeof(one));
  }
  void Clear() {
    uint64_t value;
    (void)!read(fd_, &value, sizeof(value));
  }

 private:
  int fd_;
};

// Runs a blocking call on a thread of its own, so that the main thread can keep
// the command serviced and answer signals meanwhile (and exit without waiting
// for the call). `wake` turns readable just before the result is ready.
template <typename T>
std::future<T> InBackground(std::function<T()> call, Wakeup* wake) {
  std::promise<T> promise;
  std::future<T> result = promise.get_future();
  std::thread([call = std::move(call), promise = std::move(promise), wake]() mutable {
    T value = call();
    wake->Notify();  // before the value: once it is set we touch nothing of main's
    promise.set_value(std::move(value));
  }).detach();
  return result;
}

// Ends the process now, without unwinding: a background call may still be
// inside the SDK. The command has been stopped by then.
[[noreturn]] void ExitNow(int code) {
  spdlog::default_logger()->flush();
  std::fflush(nullptr);
  std::_Exit(code);
}

// Reads a shard's records as lines.
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
  // The next record, without its newline. False at end.
  absl::StatusOr<bool> Next(std::string* line) {
    if (reader_ == nullptr) return false;  // RECORDS shards: CMD reads by range
    return reader_->Next(line);
  }
  // Appends up to about `bytes` of newline-terminated lines to `out`,
  // counting them. False at end.
  absl::StatusOr<bool> Fill(std::string* out, size_t bytes, uint64_t* records) {
    while (out->size() < bytes) {
      absl::StatusOr<bool> more = Next(&line_);
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

// Waits (up to kPollMs) until a pipe of `c` is ready; false when none is open.
bool PollPipes(ChildProcess& c, bool want_write) {
  pollfd fds[3];
  int n = 0;
  if (want_write && c.stdin_fd() >= 0) fds[n++] = {c.stdin_fd(), POLLOUT, 0};
  if (c.stdout_fd() >= 0) fds[n++] = {c.stdout_fd(), POLLIN, 0};
  if (c.stderr_fd() >= 0) fds[n++] = {c.stderr_fd(), POLLIN, 0};
  if (n == 0) return false;
  const int r = poll(fds, static_cast<nfds_t>(n), kPollMs);
  return r >= 0 || errno == EINTR;
}

void DrainStderr(ChildProcess& c, StderrTail& tail) {
  if (c.stderr_fd() < 0) return;
  std::string err;
  const bool open = ReadSome(c.stderr_fd(), &err);
  if (!err.empty()) tail.Add(err.data(), err.size());
  if (!open) c.CloseStderr();
}

enum class Outcome { kCommitted, kLost, kFailed, kStopped, kFatal };

// One life of the --persistent command and everything that belongs to it. A
// restart replaces it whole, so nothing of one life (a partial line, a count,
// readiness) can leak into the next.
struct CommandLife {
  std::unique_ptr<ChildProcess> child;
  std::string partial;    // stdout not yet split into lines
  uint64_t queued = 0;    // records numbered for sending (--framing=index: n)
  uint64_t sent = 0;      // records written whole to CMD's stdin
  uint64_t answered = 0;  // answer lines received
  uint64_t shards = 0;    // shards served whole
  std::optional<uint64_t> last_shard;  // the last of them
  std::string first_line;  // the first answer, to show when the count goes wrong
  bool ready = false;      // the ready line was seen (or none is expected)
  StderrTail stderr_tail;
};

// Runs shards through the command. Not thread-safe: the main thread's.
class ShardRunner {
 public:
  explicit ShardRunner(Config config) : config_(std::move(config)) {}

  void set_worker(Worker* worker) { worker_ = worker; }

  // --persistent: starts the command (at once, while we register).
  absl::Status StartCommand() {
    life_ = CommandLife();
    auto child = ChildProcess::Start(
        config_.command,
        {"PYTHONUNBUFFERED=1",
         absl::StrCat("EBATCH_FRAMING=",
                      config_.framing == Framing::kIndex ? "index" : "lines")},
        config_.stop_grace);
    if (!child.ok()) return child.status();
    life_.child = std::move(*child);
    life_.ready = config_.ready_line.empty();
    return absl::OkStatus();
  }

  // --persistent: waits until the command printed the ready line, copying the
  // banner lines before it to stderr. FAILED_PRECONDITION when it exited
  // first, DEADLINE_EXCEEDED after --ready-timeout, CANCELLED on a stop.
  absl::Status AwaitReady() {
    if (life_.ready) return absl::OkStatus();
    ChildProcess& c = *life_.child;
    const absl::Time deadline = absl::Now() + config_.ready_timeout;
    while (true) {
      if (g_stopping) return absl::CancelledError("stopping");
      PollPipes(c, false);
      const bool open = c.stdout_fd() >= 0 && ReadSome(c.stdout_fd(), &life_.partial);
      DrainStderr(c, life_.stderr_tail);
      size_t start = 0;
      for (size_t nl; (nl = life_.partial.find('\n', start)) != std::string::npos;
           start = nl + 1) {
        const absl::string_view line = absl::StripSuffix(
            absl::string_view(life_.partial).substr(start, nl - start), "\r");
        if (line == config_.ready_line) {
          life_.ready = true;
          life_.partial.erase(0, nl + 1);  // what follows is judged as answers
          spdlog::info("the command is ready");
          return absl::OkStatus();
        }
        const std::string banner = absl::StrCat(line, "\n");
        (void)!write(2, banner.data(), banner.size());
      }
      life_.partial.erase(0, start);
      if (!open || c.Poll()) {
        const std::optional<int> code = c.WaitUntil(absl::Now() + config_.stop_grace);
        return absl::FailedPreconditionError(
            absl::StrCat("the command ",
                         code ? absl::StrCat("exited (status ", *code, ")")
                              : std::string("closed its stdout"),
                         " before printing the ready line ", Shown(config_.ready_line)));
      }
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "the command did not print the ready line ", Shown(config_.ready_line),
            " within --ready-timeout=", absl::FormatDuration(config_.ready_timeout)));
      }
    }
  }

  // Waits up to kPollMs for `wake`, keeping the command serviced meanwhile
  // (its stderr forwarded, so that a chatty start-up cannot block on it).
  // Its stdout stays in the pipe: the next shard's first check judges it.
  void Idle(const Wakeup& wake) {
    pollfd fds[3];
    nfds_t n = 0;
    fds[n++] = {wake.fd(), POLLIN, 0};
    ChildProcess* c = life_.child.get();
    if (c != nullptr && c->stderr_fd() >= 0) fds[n++] = {c->stderr_fd(), POLLIN, 0};
    if (c != nullptr && !c->Poll()) fds[n++] = {c->exit_fd(), POLLIN, 0};
    poll(fds, n, kPollMs);
    if (c != nullptr) DrainStderr(*c, life_.stderr_tail);
  }

  // Stops the command, if any (SIGTERM, SIGKILL after the grace).
  void StopCommand() { life_ = CommandLife(); }

  Outcome Run(Shard& shard) {
    auto out = ShardOutput::Open(shard, worker_->output_dir());
    if (!out.ok()) return Fail(shard, out.status());
    auto source = RecordSource::Open(shard);
    if (!source.ok()) return Fail(shard, source.status());
    absl::StatusOr<uint64_t> records;
    if (config_.persistent) {
      if (shard.unit() != ShardUnit::kBytes) {
        return Fail(shard, absl::FailedPreconditionError(
                               "--persistent needs byte-range shards of text input; "
                               "this shard is a range of record indexes (run without "
                               "--persistent: CMD gets SHARD_BEGIN/SHARD_END)"));
      }
      if (absl::Status s = EnsureCommand(); !s.ok()) {
        if (g_stopping) return Outcome::kStopped;
        spdlog::error("{}", std::string(s.message()));
        return Outcome::kFatal;
      }
      records = PumpPersistent(shard, *source, **out);
    } else {
      records = PumpOneShot(shard, *source, **out);
    }
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
    return Fail(shard, committed);  // e.g. the output could not be flushed
  }

 private:
  Outcome Fail(Shard& shard, const absl::Status& error) {
    spdlog::warn("shard {} attempt {} failed: {}", shard.id(), shard.attempt(),
                 std::string(error.message()));
    absl::Status s = shard.Fail(error);
    if (!s.ok()) spdlog::error("cannot report the failure: {}", s.ToString());
    return Outcome::kFailed;
  }

  bool Stopping() const { return g_stopping || (worker_ && worker_->job_over()); }

  // One CMD per shard: records on stdin, stdout is the output.
  absl::StatusOr<uint64_t> PumpOneShot(Shard& shard, RecordSource& source,
                                       ShardOutput& out) {
    auto child =
        ChildProcess::Start(config_.command, ShardEnv(shard), config_.stop_grace);
    if (!child.ok()) return child.status();
    ChildProcess& c = **child;
    StderrTail tail;
    std::string pending, output;
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
      if (!PollPipes(c, offset < pending.size())) break;
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
      DrainStderr(c, tail);
      // Records handed over, but no position: what a pipe swallows is not
      // what CMD has processed, so the master judges this shard by its age.
      shard.ReportProgress(records);
      if (shard.cancelled() || Stopping()) {
        c.Terminate();
        return absl::AbortedError("cancelled");
      }
    }
    // Both pipes are closed but CMD may live on: keep answering stops and
    // cancellations while waiting for its exit (heartbeats keep the lease).
    while (!c.Poll()) {
      if (shard.cancelled() || Stopping()) {
        c.Terminate();
        return absl::AbortedError("cancelled");
      }
      c.WaitUntil(absl::Now() + absl::Milliseconds(kPollMs));
    }
    if (const int code = *c.Poll(); code != 0) {
      return absl::InternalError(absl::StrCat("command exited with status ", code,
                                              "; stderr tail: ", tail.Text()));
    }
    return records;
  }

  // Starts the command again when it died between shards, and waits for its
  // ready line. An error here is the worker's, not the shard's.
  absl::Status EnsureCommand() {
    if (life_.child != nullptr && life_.child->Poll()) {
      spdlog::warn("the command exited between shards (status {}); starting it again",
                   *life_.child->Poll());
      absl::Status s = CheckQuiet("after its last answer");
      if (!life_.partial.empty() && life_.last_shard) {
        spdlog::error("{}; shard {} before it may be shifted", std::string(s.message()),
                      *life_.last_shard);
      }
      life_ = CommandLife();
    }
    if (life_.child == nullptr) {
      if (absl::Status s = StartCommand(); !s.ok()) {
        return absl::Status(s.code(),
                            absl::StrCat("cannot start the command: ", s.message()));
      }
    }
    return AwaitReady();
  }

  // --persistent: any error mid-shard leaves CMD in an unknown state (answers
  // owed, a line half written or read), so it is restarted: a fresh CMD with
  // fresh state serves the next shard. Only a cancellation whose owed answers
  // were all collected keeps it.
  absl::StatusOr<uint64_t> PumpPersistent(Shard& shard, RecordSource& source,
                                          ShardOutput& out) {
    bool clean = false;
    absl::StatusOr<uint64_t> answered = PumpPersistentOnce(shard, source, out, &clean);
    if (answered.ok() || clean) return answered;
    return Restart(answered.status());
  }

  // Stops the command and starts a fresh one (unless we are stopping);
  // returns `why` with the old command's exit status and stderr tail.
  absl::Status Restart(const absl::Status& why) {
    const int code = life_.child->Terminate();
    DrainStderr(*life_.child, life_.stderr_tail);
    const std::string tail = life_.stderr_tail.Text();
    life_ = CommandLife();
    if (!Stopping()) {
      // At once: the model reloads while the failure is reported and the next
      // shard is fetched. A start that fails is retried before the next shard.
      if (absl::Status s = StartCommand(); !s.ok()) {
        spdlog::error("cannot start the command again: {}", s.ToString());
        life_ = CommandLife();
      }
    }
    return absl::Status(why.code(), absl::StrCat(why.message(), " (command exit status ",
                                                 code, "); stderr tail: ", tail));
  }

  absl::Status Stray(absl::string_view line, absl::string_view when) const {
    std::string context;
    if (life_.shards == 0 && life_.answered > 0) {
      // In a fresh command's first shard the usual culprit is a start-up
      // banner, taken for the first answer: show it.
      context = absl::StrCat("; the first line this command wrote was ",
                             Shown(life_.first_line));
    }
    return absl::InternalError(absl::StrCat(
        "the command wrote a line on stdout ", when, ": ", Shown(line), context,
        " (stdout must carry answers only, one line per record; logs go to stderr; "
        "a start-up banner needs --ready-line)"));
  }

  // Nothing may arrive while no record is outstanding: not a line, not a part
  // of one.
  absl::Status CheckQuiet(absl::string_view when) {
    ChildProcess& c = *life_.child;
    const bool open = c.stdout_fd() >= 0 && ReadSome(c.stdout_fd(), &life_.partial);
    DrainStderr(c, life_.stderr_tail);
    if (!life_.partial.empty()) {
      const size_t nl = life_.partial.find('\n');
      return Stray(absl::string_view(life_.partial).substr(0, nl), when);
    }
    if (!open) {
      return absl::InternalError(absl::StrCat("the command closed its stdout ", when));
    }
    return absl::OkStatus();
  }

  // Numbers (--framing=index) and queues up to a chunk of records.
  absl::StatusOr<bool> Queue(RecordSource& source, std::string* pending) {
    while (pending->size() < kInputChunk) {
      absl::StatusOr<bool> more = source.Next(&line_);
      if (!more.ok()) return more.status();
      if (!*more) return false;
      if (config_.framing == Framing::kIndex)
        absl::StrAppend(pending, life_.queued, "\t");
      pending->append(line_);
      pending->push_back('\n');
      ++life_.queued;
    }
    return true;
  }

  // An answer line as it goes to the output, or why it is not one.
  absl::StatusOr<absl::string_view> Answer(absl::string_view line) const {
    if (life_.answered == life_.sent) {
      return Stray(line, "while no record was outstanding");
    }
    if (config_.framing == Framing::kLines) return line;
    const std::string prefix = absl::StrCat(life_.answered, "\t");
    if (!absl::ConsumePrefix(&line, prefix)) {
      return absl::InternalError(absl::StrCat(
          "answer ", life_.answered, " does not start with \"", life_.answered,
          "\\t\": ", Shown(line),
          " (--framing=index: every answer echoes its record's number, in order",
          life_.answered == 0 ? "; a start-up banner needs --ready-line" : "",
          "; a command that cannot echo numbers needs --framing=lines)"));
    }
    return line;
  }

  absl::StatusOr<uint64_t> PumpPersistentOnce(Shard& shard, RecordSource& source,
                                              ShardOutput& out, bool* clean) {
    ChildProcess& c = *life_.child;
    if (absl::Status s = CheckQuiet("before this shard's first record"); !s.ok()) {
      if (life_.last_shard) {
        // A line that arrives late may be the last answer of the shard before,
        // which then took a stray line for an answer: say so, loudly.
        spdlog::error(
            "shard {} was served by the same command just before; if that command "
            "printed a stray line during it, its committed output is shifted: check it",
            *life_.last_shard);
        return absl::Status(s.code(),
                            absl::StrCat(s.message(), "; shard ", *life_.last_shard,
                                         " before it may be shifted"));
      }
      return s;
    }
    const uint64_t first = life_.answered;  // == sent == queued: nothing owed
    std::string pending;                    // queued records, written from `offset` on
    size_t offset = 0;
    bool input_done = false;
    bool draining = false;  // cancelled: collect the answers owed, then stop
    absl::Time last_answer = absl::Now();
    while (!(input_done && offset == pending.size() && life_.answered == life_.queued)) {
      if (offset == pending.size() && !input_done) {
        pending.clear();
        offset = 0;
        absl::StatusOr<bool> more = Queue(source, &pending);
        if (!more.ok()) return more.status();
        input_done = !*more;
        continue;
      }
      if (c.stdout_fd() < 0 || !PollPipes(c, offset < pending.size())) {
        return absl::InternalError(
            absl::StrCat("the command exited in the middle of shard ", shard.id()));
      }
      if (offset < pending.size()) {
        const size_t before = offset;
        if (!WriteSome(c.stdin_fd(), pending, &offset)) {
          return absl::InternalError("the command stopped reading its input");
        }
        life_.sent += static_cast<uint64_t>(
            std::count(pending.begin() + before, pending.begin() + offset, '\n'));
      }
      const bool open = ReadSome(c.stdout_fd(), &life_.partial);
      size_t start = 0;
      for (size_t nl; (nl = life_.partial.find('\n', start)) != std::string::npos;
           start = nl + 1) {
        absl::StatusOr<absl::string_view> answer =
            Answer(absl::string_view(life_.partial).substr(start, nl - start));
        if (!answer.ok()) return answer.status();
        if (life_.answered == 0) {
          life_.first_line =
              life_.partial.substr(start, std::min(nl - start, kShownBytes));
        }
        ++life_.answered;
        if (!draining) {
          if (absl::Status s = out.WriteLine(*answer); !s.ok()) return s;
        }
        last_answer = absl::Now();
      }
      life_.partial.erase(0, start);
      DrainStderr(c, life_.stderr_tail);
      if (!open) {
        return absl::InternalError(
            absl::StrCat("the command exited in the middle of shard ", shard.id()));
      }
      if (Stopping()) return absl::AbortedError("stopping");
      if (!draining) shard.ReportProgress(life_.answered - first, source.units_done());
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
        life_.queued = life_.sent + static_cast<uint64_t>(std::count(
                                        pending.begin() + offset, pending.end(), '\n'));
        input_done = true;
      }
      const bool owed = life_.answered < life_.sent || offset < pending.size();
      if (owed && absl::Now() - last_answer > config_.stall_timeout) {
        return absl::InternalError(
            absl::StrCat("the command answered nothing for ",
                         absl::FormatDuration(config_.stall_timeout),
                         " (does it read line by line and flush every answer?)"));
      }
    }
    if (absl::Status s = CheckQuiet("after this shard's last answer"); !s.ok()) return s;
    ++life_.shards;
    life_.last_shard = shard.id();
    if (draining) {
      *clean = true;
      return absl::AbortedError("cancelled");
    }
    return life_.answered - first;
  }

  const Config config_;
  Worker* worker_ = nullptr;
  CommandLife life_;  // --persistent only
  std::string line_;
};

constexpr char kUsage[] =
    R"(ebatch-worker - a ready-made ElasticBatch worker for any language.

Usage: ebatch-worker [flags] -- CMD

For each shard, CMD runs through `sh -c` with the shard's records on stdin
(one per line) and SHARD_ID, SHARD_ATTEMPT, SHARD_SOURCE, SHARD_BEGIN,
SHARD_END, SHARD_UNIT, SHARD_OUTPUT_NAME in its environment; its stdout is
committed exactly once as the shard's output. A non-zero exit fails the shard
with the tail of its stderr.

With --persistent one CMD serves all shards. It starts at once (its load
counts as start-up time for the master's slow-start backups) and must:
  * answer every input line with exactly one output line, in order, flushed
    (read stdin line by line: `python -u`, `mawk -W interactive`,
    `grep --line-buffered`);
  * with --framing=index (the default), echo each record's number: record n
    comes as "<n>\t<record>" (n counts from 0 over CMD's life) and its answer
    must go back as "<n>\t<answer>"; the prefix is stripped. Whatever else
    reaches stdout (a library printing a warning), no answer can land in
    another record's place: any mismatch fails the shard. `cat` qualifies;
    in Python: n, record = line.rstrip("\n").split("\t", 1);
    print(n + "\t" + answer, flush=True);
  * with --framing=lines (plain lines, for a CMD that cannot echo a number),
    write nothing else on stdout. A stray line while records are outstanding
    is taken for an answer and caught only when the surplus answer arrives
    while none is owed, which can be after the shard was committed (the next
    shard then fails and names it).
CMD sees the framing in EBATCH_FRAMING. A stdout line while no record is
outstanding fails the shard and names the line; any error mid-shard fails the
shard and restarts CMD. A start-up banner on stdout needs --ready-line TEXT
(print TEXT when loaded: we register with the master only then, and copy the
lines before it to stderr).

CMD runs as our child in a process group of its own, with a guard process:
its whole group is stopped (SIGTERM, SIGKILL after --stop-grace) when we stop
it and when we die, even by SIGKILL.

Reads ELASTICBATCH_CONFIG, AIMASTER_ADDR and PAI_INPUT_*/PAI_OUTPUT_* like any
worker, and the job token (ELASTICBATCH_TOKEN or ELASTICBATCH_TOKEN_FILE) and
TLS settings (ELASTICBATCH_TLS, _TLS_CA, _TLS_CERT, _TLS_KEY,
_TLS_SERVER_NAME); CMD does not see ELASTICBATCH_TOKEN. Exit codes: 0 when the job is over, 1 when the master was lost or CMD
never got ready, 2 for a configuration error, 128+N after signal N.

Flags:
)";

absl::StatusOr<Config> ReadConfig(const cli::ParsedCommandLine& parsed) {
  Config c;
  if (parsed.after_dashes.empty() || !parsed.positional.empty()) {
    return absl::InvalidArgumentError("usage: ebatch-worker [flags] -- CMD");
  }
  // Each word after `--` arrives as given (one word is a shell command), and
  // $PAI_USER_ARGS gives every hyperparameter value as one argument.
  const char* user_args = std::getenv(kUserArgsVar);
  c.command = ExpandUserArgs(ShellCommandFromWords(parsed.after_dashes),
                             user_args != nullptr ? user_args : "");
  c.persistent = absl::GetFlag(FLAGS_persistent);
  c.ready_line = absl::GetFlag(FLAGS_ready_line);
  c.ready_timeout = absl::GetFlag(FLAGS_ready_timeout);
  c.stall_timeout = absl::GetFlag(FLAGS_stall_timeout);
  const std::string framing = absl::GetFlag(FLAGS_framing);
  if (!c.persistent && (!c.ready_line.empty() || !framing.empty())) {
    return absl::InvalidArgumentError("--ready-line and --framing need --persistent");
  }
  if (framing.empty() || framing == "index") {
    c.framing = Framing::kIndex;
  } else if (framing == "lines") {
    c.framing = Framing::kLines;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--framing must be 'index' or 'lines', not '", framing, "'"));
  }
  if (c.ready_line.find('\n') != std::string::npos) {
    return absl::InvalidArgumentError("--ready-line must be a single line");
  }
  if (c.ready_timeout <= absl::ZeroDuration() ||
      c.stall_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--ready-timeout and --stall-timeout must be positive");
  }
  std::string grace = absl::GetFlag(FLAGS_stop_grace);
  std::string source = "--stop-grace";
  if (grace.empty()) {
    const char* env = std::getenv("ELASTICBATCH_STOP_GRACE");
    grace = env != nullptr ? env : "";
    source = "ELASTICBATCH_STOP_GRACE";
  }
  c.stop_grace = kDefaultStopGrace;
  if (!grace.empty() && (!absl::ParseDuration(grace, &c.stop_grace) ||
                         c.stop_grace < absl::ZeroDuration())) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": '", grace, "' is not a duration like 5s or 500ms"));
  }
  return c;
}

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
    cli::PrintFlags(std::cout, {"ebatch_worker/", "common/cli/"});
    return cli::kExitOk;
  }
  if (absl::Status s = cli::InitLogging("ebatch-worker"); !s.ok()) {
    return cli::ReportUsageError("ebatch-worker", s);
  }
  absl::StatusOr<Config> config = ReadConfig(*parsed);
  if (!config.ok()) return cli::ReportUsageError("ebatch-worker", config.status());
  // The command runs on hostile input and has no business with the master:
  // the token is taken into the options and out of the environment the
  // command inherits, before any thread can read the environment.
  absl::StatusOr<std::string> token =
      rpc::TokenFromEnvironment(rpc::kTokenVar, rpc::kTokenFileVar);
  if (!token.ok()) return cli::ReportUsageError("ebatch-worker", token.status());
  unsetenv(rpc::kTokenVar);
  unsetenv(rpc::kAdminTokenVar);

  Wakeup wake;  // outlives the watcher, which notifies it
  cli::SignalWatcher signals([&wake](int sig) {
    spdlog::warn("signal {}: stopping", sig);
    g_stopping = true;
    wake.Notify();
  });
  ShardRunner runner(*config);
  // Waits for a background call while keeping the command serviced; on a
  // stop request, stops the command and ends the process at once.
  auto await = [&](auto& future) {
    while (future.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      if (g_stopping) {
        runner.StopCommand();
        ExitNow(128 + signals.last_signal());
      }
      runner.Idle(wake);
    }
    wake.Clear();
    return future.get();
  };

  if (config->persistent) {
    if (absl::Status s = runner.StartCommand(); !s.ok()) {
      spdlog::error("cannot start the command: {}", s.ToString());
      return cli::kExitFailure;
    }
    if (absl::Status s = runner.AwaitReady(); !s.ok()) {
      runner.StopCommand();
      if (g_stopping) return 128 + signals.last_signal();
      spdlog::error("{}", std::string(s.message()));
      return cli::kExitFailure;
    }
  }
  WorkerOptions options;
  options.master_address = absl::GetFlag(FLAGS_master);
  options.prefetch = absl::GetFlag(FLAGS_prefetch);
  options.output_dir = absl::GetFlag(FLAGS_output_dir);
  options.input_root = absl::GetFlag(FLAGS_input_root);
  options.master_lost_timeout = absl::GetFlag(FLAGS_master_lost_timeout);
  options.token = *token;
  // Registration runs while the command loads (it may take long: the master
  // may not be up yet).
  auto registration = InBackground<absl::StatusOr<std::unique_ptr<Worker>>>(
      [options] { return Worker::FromEnvironment(options); }, &wake);
  absl::StatusOr<std::unique_ptr<Worker>> worker = await(registration);
  if (!worker.ok()) {
    runner.StopCommand();
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
  runner.set_worker(worker->get());
  uint64_t committed = 0;
  while (!g_stopping) {
    Worker* w = worker->get();
    auto next = InBackground<absl::StatusOr<std::optional<Shard>>>(
        [w] { return w->NextShard(); }, &wake);
    absl::StatusOr<std::optional<Shard>> shard = await(next);
    if (!shard.ok()) {
      runner.StopCommand();
      spdlog::error("{}", shard.status().ToString());
      return absl::IsFailedPrecondition(shard.status()) ? cli::kExitOk
                                                        : cli::kExitFailure;
    }
    if (!shard->has_value()) {
      runner.StopCommand();
      spdlog::info("job over ({}): {}; {} shard(s) committed here",
                   (*worker)->job_succeeded() ? "succeeded" : "failed",
                   (*worker)->end_reason(), committed);
      return cli::kExitOk;
    }
    const Outcome outcome = runner.Run(**shard);
    if (outcome == Outcome::kCommitted) ++committed;
    if (outcome == Outcome::kFatal) {
      runner.StopCommand();
      return cli::kExitFailure;
    }
  }
  runner.StopCommand();
  const int sig = signals.last_signal();
  return sig != 0 ? 128 + sig : cli::kExitFailure;
}

}  // namespace
}  // namespace elasticbatch::tools

int main(int argc, char** argv) { return elasticbatch::tools::Main(argc, argv); }
