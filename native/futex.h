// Waiting on a 32-bit word of shared memory until another process wakes it.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>

namespace shm {

// Exported to JavaScript as waitCodes (lib/binding.ts reads them from there).
// kWaitCancelled only comes from the asynchronous waiter (waiter.cc).
enum WaitResult : int { kWaitOk = 0, kWaitNotEqual = 1, kWaitTimedOut = 2, kWaitCancelled = 3 };

int64_t MonotonicNow();  // nanoseconds, CLOCK_MONOTONIC

// Sleeps while *word == expected, until woken or until deadline (monotonic
// nanoseconds; negative: none). Retries EINTR. Returns a WaitResult, or
// -errno for an error the caller must report.
int FutexWaitUntil(uint32_t* word, uint32_t expected, int64_t deadline);

// Wakes up to `count` waiters on word, in any process. Returns how many were
// woken, or -errno.
int FutexWake(uint32_t* word, int count);

void InitFutex(Napi::Env env, Napi::Object exports);

}  // namespace shm
