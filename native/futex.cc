// Cross-process wait and wake on a 32-bit word. V8's Atomics.wait/notify only
// reach threads of the same process, so these go to the kernel: a Linux futex
// *without* FUTEX_PRIVATE_FLAG is keyed by the physical page, and so works
// between processes that map the same object at any address.
#include "futex.h"

#include <errno.h>
#include <time.h>

#include <climits>

#include "errors.h"
#include "sab.h"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#elif defined(__APPLE__) && __has_include(<os/os_sync_wait_on_address.h>)
// macOS 14.4+: compiled in, untested by this project's CI.
#include <os/clock.h>
#include <os/os_sync_wait_on_address.h>
#define SHM_HAVE_OS_SYNC 1
#endif

namespace shm {

int64_t MonotonicNow() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

#if defined(__linux__)

int FutexWaitUntil(uint32_t* word, uint32_t expected, int64_t deadline) {
  struct timespec abs;
  if (deadline >= 0) {
    abs.tv_sec = deadline / 1000000000;
    abs.tv_nsec = deadline % 1000000000;
  }
  for (;;) {
    // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a retry
    // after EINTR neither waits longer than asked nor recomputes anything.
    long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected,
                     deadline >= 0 ? &abs : nullptr, nullptr, FUTEX_BITSET_MATCH_ANY);
    if (r == 0) return kWaitOk;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return kWaitNotEqual;
    if (errno == ETIMEDOUT) return kWaitTimedOut;
    return -errno;
  }
}

int FutexWake(uint32_t* word, int count) {
  long r = syscall(SYS_futex, word, FUTEX_WAKE, count, nullptr, nullptr, 0);
  return r < 0 ? -errno : static_cast<int>(r);
}

#elif defined(SHM_HAVE_OS_SYNC)

int FutexWaitUntil(uint32_t* word, uint32_t expected, int64_t deadline) {
  for (;;) {
    int r;
    if (deadline < 0) {
      r = os_sync_wait_on_address(word, expected, 4, OS_SYNC_WAIT_ON_ADDRESS_SHARED);
    } else {
      int64_t left = deadline - MonotonicNow();
      if (left <= 0) return kWaitTimedOut;
      r = os_sync_wait_on_address_with_timeout(word, expected, 4,
                                               OS_SYNC_WAIT_ON_ADDRESS_SHARED,
                                               OS_CLOCK_MACH_ABSOLUTE_TIME, left);
    }
    if (r >= 0) {
      return __atomic_load_n(word, __ATOMIC_SEQ_CST) == expected ? kWaitOk : kWaitNotEqual;
    }
    if (errno == EINTR || errno == EFAULT) continue;
    if (errno == ETIMEDOUT) return kWaitTimedOut;
    return -errno;
  }
}

int FutexWake(uint32_t* word, int count) {
  int r = count == 1 ? os_sync_wake_by_address_any(word, 4, OS_SYNC_WAKE_BY_ADDRESS_SHARED)
                     : os_sync_wake_by_address_all(word, 4, OS_SYNC_WAKE_BY_ADDRESS_SHARED);
  if (r < 0) return errno == ENOENT ? 0 : -errno;
  return 1;  // the kernel does not say how many
}

#else

int FutexWaitUntil(uint32_t*, uint32_t, int64_t) { return -ENOSYS; }
int FutexWake(uint32_t*, int) { return -ENOSYS; }

#endif

namespace {

// Resolves (sab, byteOffset) to an aligned word inside the buffer, or throws.
uint32_t* WordAt(const Napi::CallbackInfo& info, SharedMemory* mem) {
  Napi::Env env = info.Env();
  if (!GetSharedMemory(env, info[0], mem)) {
    Napi::TypeError::New(env, "expected a SharedArrayBuffer").ThrowAsJavaScriptException();
    return nullptr;
  }
  int64_t offset = info[1].As<Napi::Number>().Int64Value();
  if (offset < 0 || offset % 4 != 0 || static_cast<uint64_t>(offset) + 4 > mem->length) {
    Napi::RangeError::New(env, "word offset out of range or unaligned")
        .ThrowAsJavaScriptException();
    return nullptr;
  }
  return reinterpret_cast<uint32_t*>(static_cast<char*>(mem->data) + offset);
}

// wait(sab, byteOffset, expected, timeoutMs) -> 0 ok | 1 not-equal | 2 timed-out
Napi::Value Wait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SharedMemory mem;
  uint32_t* word = WordAt(info, &mem);
  if (word == nullptr) return env.Undefined();
  uint32_t expected = info[2].As<Napi::Number>().Uint32Value();
  double timeoutMs = info[3].As<Napi::Number>().DoubleValue();
  int64_t deadline = -1;
  if (timeoutMs < 1e15) deadline = MonotonicNow() + static_cast<int64_t>(timeoutMs * 1e6);
  int r = FutexWaitUntil(word, expected, deadline);
  if (r < 0) {
    ErrnoError(env, -r, "futex").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, r);
}

// wake(sab, byteOffset, count) -> number of waiters woken
Napi::Value Wake(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SharedMemory mem;
  uint32_t* word = WordAt(info, &mem);
  if (word == nullptr) return env.Undefined();
  double count = info[2].As<Napi::Number>().DoubleValue();
  int r = FutexWake(word, count >= INT_MAX ? INT_MAX : static_cast<int>(count));
  if (r < 0) {
    ErrnoError(env, -r, "futex").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, r);
}

}  // namespace

void InitFutex(Napi::Env env, Napi::Object exports) {
  exports.Set("wait", Napi::Function::New(env, Wait, "wait"));
  exports.Set("wake", Napi::Function::New(env, Wake, "wake"));
  Napi::Object codes = Napi::Object::New(env);
  codes.Set("OK", Napi::Number::New(env, kWaitOk));
  codes.Set("NOT_EQUAL", Napi::Number::New(env, kWaitNotEqual));
  codes.Set("TIMED_OUT", Napi::Number::New(env, kWaitTimedOut));
  codes.Set("CANCELLED", Napi::Number::New(env, kWaitCancelled));
  codes.Freeze();
  exports.Set("waitCodes", codes);
}

}  // namespace shm
