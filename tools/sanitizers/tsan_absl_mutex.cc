// tsan_absl_mutex.cc — makes abseil's Mutex and CondVar visible to ThreadSanitizer, for the
// -DRETRACE_SANITIZE=thread build only (`make test-tsan`); every executable of that build links it.
//
// Why: Debian's libabsl_synchronization is not built with TSan, so absl::Mutex locks with
// atomics and futexes that TSan cannot see. Every access our code makes under an absl::Mutex
// then looks unsynchronised — a test as simple as two threads incrementing a counter under
// absl::MutexLock reports a data race, in our own frames, which no suppression restricted to
// third-party code can match. abseil's own TSan build annotates its mutex with TSan's mutex
// interface (absl/base/internal/tsan_mutex_interface.h); this file does the same from outside:
// it defines the public locking members of absl::Mutex and absl::CondVar in the executable, so
// the dynamic linker binds every caller to them — our code, gRPC's (grpc_core::Mutex and gpr_mu
// are absl::Mutex) and abseil's own (its calls go through the PLT) — and each definition
// annotates the operation for TSan and calls the library's definition, found with
// dlsym(RTLD_NEXT). As in abseil's own build, TSan ignores memory accesses made inside the
// library call, where absl evaluates Conditions on behalf of other threads.
//
// Limits: only what absl exports is wrapped; inline wrappers (MutexLock, WriterLock, ...) call
// these. absl::Notification, BlockingCounter and Barrier are not annotated: their fast paths are
// atomics inside the library (retrace uses none of them; a test that does would see false
// races). absl's internal spin locks stay invisible, but they guard only abseil's own state. A
// Mutex constructed in uninstrumented code is registered with TSan on its first lock.
//
// Thread-safety: each wrapper looks up its real function once (a function-local static) and is
// then as thread-safe as the function it wraps; the nesting depth is per thread.
#if defined(__SANITIZE_THREAD__)
#define RETRACE_TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RETRACE_TSAN_BUILD 1
#endif
#endif
#ifndef RETRACE_TSAN_BUILD
#error "tsan_absl_mutex.cc belongs in -fsanitize=thread builds only (RETRACE_SANITIZE=thread)"
#endif

#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace {

#define RETRACE_STRINGIZE_INNER(x) #x
#define RETRACE_STRINGIZE(x) RETRACE_STRINGIZE_INNER(x)

// Mangled returns the Itanium-mangled name of a member of absl's (inline) namespace, given the
// mangled rest, e.g. "5Mutex4LockEv" -> "_ZN4absl7debian35Mutex4LockEv" on Debian.
std::string Mangled(const char* rest) {
  std::string name = "_ZN4absl";
#if ABSL_OPTION_USE_INLINE_NAMESPACE
  const char* ns = RETRACE_STRINGIZE(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  name += std::to_string(std::strlen(ns)) + ns;
#endif
  return name + rest;
}

// Real returns the library's definition of the member whose mangled tail is `rest`; a missing
// one aborts at once (the build and abseil disagree; nothing would be checked otherwise).
template <typename Fn>
Fn Real(const char* rest) {
  const std::string name = Mangled(rest);
  void* fn = dlsym(RTLD_NEXT, name.c_str());
  if (fn == nullptr) {
    std::fprintf(stderr, "tsan_absl_mutex: %s not found after this executable: %s\n",
                 name.c_str(), dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(fn);
}

// HeldFlags returns TSan's flags for how `mu` is held now: absl keeps kMuWriter (0x08) in the
// Mutex's only word while a writer holds it, as abseil's own TSan build reads it in Await and
// CondVar::Wait.
unsigned HeldFlags(const absl::Mutex* mu) {
  static_assert(sizeof(absl::Mutex) == sizeof(std::atomic<intptr_t>), "absl::Mutex layout");
  constexpr intptr_t kMuWriter = 0x0008;
  const intptr_t word =
      reinterpret_cast<const std::atomic<intptr_t>*>(mu)->load(std::memory_order_relaxed);
  return (word & kMuWriter) != 0 ? 0 : __tsan_mutex_read_lock;
}

// Released and Reacquired bracket a library call that unlocks `mu` and takes it again before
// returning (Await, CondVar::Wait): TSan sees an unlock before the call and a lock after it,
// and ignores what the call itself touches.
void Released(void* mu, unsigned flags) {
  __tsan_mutex_pre_unlock(mu, flags);
  __tsan_mutex_post_unlock(mu, flags);
  __tsan_mutex_pre_lock(mu, flags);
}
void Reacquired(void* mu, unsigned flags) { __tsan_mutex_post_lock(mu, flags, 0); }

// Outermost is true in the outermost wrapper on this thread's stack. absl's own definitions call
// others through the PLT (CondVar::WaitWithTimeout calls WaitWithDeadline), so they reach these
// wrappers again; only the outermost annotates, or TSan would see the mutex unlocked twice.
thread_local int wrapper_depth = 0;
class Outermost {
 public:
  Outermost() : outermost_(wrapper_depth++ == 0) {}
  ~Outermost() { --wrapper_depth; }
  Outermost(const Outermost&) = delete;
  Outermost& operator=(const Outermost&) = delete;
  explicit operator bool() const { return outermost_; }

 private:
  const bool outermost_;
};

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

// Each wrapper: find the library's definition once, call it bare when nested in another
// wrapper, else annotate around it.

Mutex::~Mutex() {
  static const auto real = Real<void (*)(Mutex*)>("5MutexD2Ev");
  const Outermost outermost;
  if (outermost) __tsan_mutex_destroy(this, __tsan_mutex_not_static);
  real(this);
}

void Mutex::Lock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex4LockEv");
  const Outermost outermost;
  if (!outermost) return real(this);
  __tsan_mutex_pre_lock(this, 0);
  real(this);
  __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::ReaderLock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex10ReaderLockEv");
  const Outermost outermost;
  if (!outermost) return real(this);
  __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  real(this);
  __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
}

bool Mutex::TryLock() {
  static const auto real = Real<bool (*)(Mutex*)>("5Mutex7TryLockEv");
  const Outermost outermost;
  if (!outermost) return real(this);
  __tsan_mutex_pre_lock(this, __tsan_mutex_try_lock);
  const bool locked = real(this);
  __tsan_mutex_post_lock(
      this, __tsan_mutex_try_lock | (locked ? 0 : __tsan_mutex_try_lock_failed), 0);
  return locked;
}

bool Mutex::ReaderTryLock() {
  static const auto real = Real<bool (*)(Mutex*)>("5Mutex13ReaderTryLockEv");
  const Outermost outermost;
  if (!outermost) return real(this);
  const unsigned flags = __tsan_mutex_read_lock | __tsan_mutex_try_lock;
  __tsan_mutex_pre_lock(this, flags);
  const bool locked = real(this);
  __tsan_mutex_post_lock(this, flags | (locked ? 0 : __tsan_mutex_try_lock_failed), 0);
  return locked;
}

void Mutex::Unlock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex6UnlockEv");
  const Outermost outermost;
  if (!outermost) return real(this);
  __tsan_mutex_pre_unlock(this, 0);
  real(this);
  __tsan_mutex_post_unlock(this, 0);
}

void Mutex::ReaderUnlock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex12ReaderUnlockEv");
  const Outermost outermost;
  if (!outermost) return real(this);
  __tsan_mutex_pre_unlock(this, __tsan_mutex_read_lock);
  real(this);
  __tsan_mutex_post_unlock(this, __tsan_mutex_read_lock);
}

void Mutex::LockWhen(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "5Mutex8LockWhenERKNS0_9ConditionE");
  const Outermost outermost;
  if (!outermost) return real(this, cond);
  __tsan_mutex_pre_lock(this, 0);
  real(this, cond);
  __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  const Outermost outermost;
  if (!outermost) return real(this, cond);
  __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  real(this, cond);
  __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  const Outermost outermost;
  if (!outermost) return real(this, cond, timeout);
  __tsan_mutex_pre_lock(this, 0);
  const bool result = real(this, cond, timeout);
  __tsan_mutex_post_lock(this, 0, 0);
  return result;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  const Outermost outermost;
  if (!outermost) return real(this, cond, timeout);
  __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  const bool result = real(this, cond, timeout);
  __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
  return result;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const Outermost outermost;
  if (!outermost) return real(this, cond, deadline);
  __tsan_mutex_pre_lock(this, 0);
  const bool result = real(this, cond, deadline);
  __tsan_mutex_post_lock(this, 0, 0);
  return result;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const Outermost outermost;
  if (!outermost) return real(this, cond, deadline);
  __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  const bool result = real(this, cond, deadline);
  __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
  return result;
}

void Mutex::Await(const Condition& cond) {
  static const auto real = Real<void (*)(Mutex*, const Condition&)>(
      "5Mutex5AwaitERKNS0_9ConditionE");
  const Outermost outermost;
  if (!outermost) return real(this, cond);
  const unsigned flags = HeldFlags(this);
  Released(this, flags);
  real(this, cond);
  Reacquired(this, flags);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  const Outermost outermost;
  if (!outermost) return real(this, cond, timeout);
  const unsigned flags = HeldFlags(this);
  Released(this, flags);
  const bool result = real(this, cond, timeout);
  Reacquired(this, flags);
  return result;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const Outermost outermost;
  if (!outermost) return real(this, cond, deadline);
  const unsigned flags = HeldFlags(this);
  Released(this, flags);
  const bool result = real(this, cond, deadline);
  Reacquired(this, flags);
  return result;
}

void CondVar::Wait(Mutex* mu) {
  static const auto real = Real<void (*)(CondVar*, Mutex*)>("7CondVar4WaitEPNS0_5MutexE");
  const Outermost outermost;
  if (!outermost) return real(this, mu);
  const unsigned flags = HeldFlags(mu);
  Released(mu, flags);
  real(this, mu);
  Reacquired(mu, flags);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Duration)>(
      "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  const Outermost outermost;
  if (!outermost) return real(this, mu, timeout);
  const unsigned flags = HeldFlags(mu);
  Released(mu, flags);
  const bool result = real(this, mu, timeout);
  Reacquired(mu, flags);
  return result;
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Time)>(
      "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  const Outermost outermost;
  if (!outermost) return real(this, mu, deadline);
  const unsigned flags = HeldFlags(mu);
  Released(mu, flags);
  const bool result = real(this, mu, deadline);
  Reacquired(mu, flags);
  return result;
}

ABSL_NAMESPACE_END
}  // namespace absl
