// Makes absl::Mutex, absl::CondVar and absl::Notification visible to
// ThreadSanitizer when Abseil itself was not built with -fsanitize=thread.
//
// Why: Debian's libabsl_synchronization is uninstrumented, and Abseil only
// calls its ABSL_TSAN_MUTEX_* annotations when compiled under TSan. Without
// them TSan sees no happens-before edge through an absl::Mutex, so every
// ABSL_GUARDED_BY member touched by two threads would be reported as a race.
//
// How: this file is linked into every executable of the TSan build
// (ELASTICBATCH_SANITIZE=thread). An executable's definitions come first in
// symbol lookup, so these definitions replace the library's for our code and
// for every shared library that calls them through its PLT (gRPC does: its
// gpr_mu / gpr_cv are absl::Mutex / absl::CondVar). Each one tells TSan what
// the lock means and forwards to the real function found with
// dlsym(RTLD_NEXT). The ordering is what keeps this sound: the release half of
// an unlock is recorded *before* the real unlock, the acquire half of a lock
// *after* the real lock, so every edge TSan records really exists.
//
// absl::Condition predicates are evaluated by whichever thread holds the
// mutex at the time, often the thread inside Unlock() after it has released
// (for TSan). Each predicate is therefore wrapped so that its evaluation
// acquires and releases the mutex's clock, as Abseil's own annotations do.

#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

#if !defined(__SANITIZE_THREAD__) && defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define __SANITIZE_THREAD__ 1
#endif
#endif
#ifndef __SANITIZE_THREAD__
#error "tsan_absl_mutex.cc belongs to the -fsanitize=thread build only"
#endif

namespace {

#define EB_STR2(x) #x
#define EB_STR(x) EB_STR2(x)

// Itanium mangled names are written with '@' standing for the inline
// namespace (Debian's "debian3"), spliced in from Abseil's options so the
// names follow the installed Abseil instead of being hard-coded.
static_assert(ABSL_OPTION_USE_INLINE_NAMESPACE,
              "the mangled names below assume Abseil's inline namespace");
std::string AbslSymbol(const char* pattern) {
  const std::string ns = EB_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  std::string name = pattern;
  name.replace(name.find('@'), 1, std::to_string(ns.size()) + ns);
  return name;
}

template <typename Fn>
Fn Real(const char* rest) {
  const std::string name = AbslSymbol(rest);
  void* f = dlsym(RTLD_NEXT, name.c_str());
  if (f == nullptr) {
    // Failing loudly beats a TSan run that silently checks nothing.
    std::fprintf(stderr, "tsan_absl_mutex: %s not found: %s\n", name.c_str(), dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(f);
}

// One lazily resolved pointer per wrapped function. Function-local statics
// are thread-safe; the first call may come from any thread.
#define EB_REAL(type, mangled) static const auto real = Real<type>(mangled);

constexpr unsigned kRead = __tsan_mutex_read_lock;

void PreLock(void* mu, unsigned flags) { __tsan_mutex_pre_lock(mu, flags); }
void PostLock(void* mu, unsigned flags) { __tsan_mutex_post_lock(mu, flags, 0); }
void Release(void* mu, unsigned flags) {
  __tsan_mutex_pre_unlock(mu, flags);
  __tsan_mutex_post_unlock(mu, flags);
}

// A Condition whose evaluation is ordered with the mutex's other critical
// sections (see the file comment).
class AnnotatedCondition {
 public:
  AnnotatedCondition(absl::Mutex* mu, const absl::Condition& cond)
      : mu_(mu), cond_(&cond) {}
  absl::Condition condition() { return absl::Condition(&Eval, this); }

 private:
  static bool Eval(AnnotatedCondition* self) {
    __tsan_acquire(self->mu_);
    const bool result = self->cond_->Eval();
    __tsan_release(self->mu_);
    return result;
  }
  absl::Mutex* mu_;
  const absl::Condition* cond_;
};

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

// No ~Mutex wrapper: TSan forgets a mutex when its memory is freed, and a
// __tsan_mutex_destroy would be a write racing with gRPC's own teardown, whose
// ordering (reference counts in uninstrumented code) TSan cannot see.

// Lock/unlock the thread-safety analysis cannot follow through the forwarding;
// this file is never compiled with -Wthread-safety (it is TSan-only).

void Mutex::Lock() {
  EB_REAL(void (*)(Mutex*), "_ZN4absl@5Mutex4LockEv");
  PreLock(this, 0);
  real(this);
  PostLock(this, 0);
}

void Mutex::ReaderLock() {
  EB_REAL(void (*)(Mutex*), "_ZN4absl@5Mutex10ReaderLockEv");
  PreLock(this, kRead);
  real(this);
  PostLock(this, kRead);
}

bool Mutex::TryLock() {
  EB_REAL(bool (*)(Mutex*), "_ZN4absl@5Mutex7TryLockEv");
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_lock);
  const bool ok = real(this);
  __tsan_mutex_post_lock(
      this, __tsan_mutex_try_lock | (ok ? 0 : __tsan_mutex_try_lock_failed), 0);
  return ok;
}

bool Mutex::ReaderTryLock() {
  EB_REAL(bool (*)(Mutex*), "_ZN4absl@5Mutex13ReaderTryLockEv");
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_read_lock);
  const bool ok = real(this);
  __tsan_mutex_post_lock(
      this, ok ? __tsan_mutex_try_read_lock : __tsan_mutex_try_read_lock_failed, 0);
  return ok;
}

void Mutex::Unlock() {
  EB_REAL(void (*)(Mutex*), "_ZN4absl@5Mutex6UnlockEv");
  __tsan_mutex_pre_unlock(this, 0);
  real(this);
  __tsan_mutex_post_unlock(this, 0);
}

void Mutex::ReaderUnlock() {
  EB_REAL(void (*)(Mutex*), "_ZN4absl@5Mutex12ReaderUnlockEv");
  __tsan_mutex_pre_unlock(this, kRead);
  real(this);
  __tsan_mutex_post_unlock(this, kRead);
}

// The library implements each *WithTimeout as its *WithDeadline with
// Now() + timeout, calling it through the PLT, that is, through the wrapper
// below: forwarding to the real *WithTimeout would annotate twice. So the
// timeouts are turned into deadlines here, the same way.

// Await* may release and reacquire the mutex while waiting: for TSan, an
// unlock before and a lock after.
void Mutex::Await(const Condition& cond) {
  EB_REAL(void (*)(Mutex*, const Condition&), "_ZN4absl@5Mutex5AwaitERKNS0_9ConditionE");
  AnnotatedCondition annotated(this, cond);
  const Condition c = annotated.condition();
  Release(this, 0);
  real(this, c);
  PreLock(this, 0);
  PostLock(this, 0);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  return AwaitWithDeadline(cond, Now() + timeout);
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  EB_REAL(bool (*)(Mutex*, const Condition&, Time),
          "_ZN4absl@5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  AnnotatedCondition annotated(this, cond);
  const Condition c = annotated.condition();
  Release(this, 0);
  const bool ok = real(this, c, deadline);
  PreLock(this, 0);
  PostLock(this, 0);
  return ok;
}

void Mutex::LockWhen(const Condition& cond) {
  EB_REAL(void (*)(Mutex*, const Condition&),
          "_ZN4absl@5Mutex8LockWhenERKNS0_9ConditionE");
  AnnotatedCondition annotated(this, cond);
  const Condition c = annotated.condition();
  PreLock(this, 0);
  real(this, c);
  PostLock(this, 0);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  return LockWhenWithDeadline(cond, Now() + timeout);
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  EB_REAL(bool (*)(Mutex*, const Condition&, Time),
          "_ZN4absl@5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  AnnotatedCondition annotated(this, cond);
  const Condition c = annotated.condition();
  PreLock(this, 0);
  const bool ok = real(this, c, deadline);
  PostLock(this, 0);
  return ok;
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  EB_REAL(void (*)(Mutex*, const Condition&),
          "_ZN4absl@5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  AnnotatedCondition annotated(this, cond);
  const Condition c = annotated.condition();
  PreLock(this, kRead);
  real(this, c);
  PostLock(this, kRead);
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  return ReaderLockWhenWithDeadline(cond, Now() + timeout);
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  EB_REAL(bool (*)(Mutex*, const Condition&, Time),
          "_ZN4absl@5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  AnnotatedCondition annotated(this, cond);
  const Condition c = annotated.condition();
  PreLock(this, kRead);
  const bool ok = real(this, c, deadline);
  PostLock(this, kRead);
  return ok;
}

// CondVar waits give the mutex up and take it back (always exclusively held).
void CondVar::Wait(Mutex* mu) {
  EB_REAL(void (*)(CondVar*, Mutex*), "_ZN4absl@7CondVar4WaitEPNS0_5MutexE");
  Release(mu, 0);
  real(this, mu);
  PreLock(mu, 0);
  PostLock(mu, 0);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  return WaitWithDeadline(mu, Now() + timeout);
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  EB_REAL(bool (*)(CondVar*, Mutex*, Time),
          "_ZN4absl@7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  Release(mu, 0);
  const bool timed_out = real(this, mu, deadline);
  PreLock(mu, 0);
  PostLock(mu, 0);
  return timed_out;
}

// Notification's fast path is an atomic flag inside the library, invisible
// to TSan: Notify() releases, a wait that saw the notification acquires.
void Notification::Notify() {
  EB_REAL(void (*)(Notification*), "_ZN4absl@12Notification6NotifyEv");
  __tsan_release(this);
  real(this);
}

void Notification::WaitForNotification() const {
  EB_REAL(void (*)(const Notification*),
          "_ZNK4absl@12Notification19WaitForNotificationEv");
  real(this);
  __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  EB_REAL(bool (*)(const Notification*, Duration),
          "_ZNK4absl@12Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  const bool notified = real(this, timeout);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  EB_REAL(bool (*)(const Notification*, Time),
          "_ZNK4absl@12Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  const bool notified = real(this, deadline);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
