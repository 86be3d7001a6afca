// An asynchronous futex wait that never blocks the event loop: each Waiter
// owns one thread that sleeps in the kernel (no CPU while it waits) and posts
// the result back to the loop through a thread-safe function. The thread is
// created once and reused, so a wait costs two context switches, not a thread.
//
// JavaScript side: lib/futex.ts (PooledWaiter). At most one wait is in flight
// per Waiter; each carries an id, echoed with its result, so a late result of
// a cancelled wait cannot be taken for the next one.
#include "waiter.h"

#include <climits>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "futex.h"
#include "sab.h"

namespace shm {
namespace {

// A word whose shared mapping was replaced (region closed under the waiter)
// can no longer be woken through it: the thread re-checks at this period.
constexpr int64_t kSliceNs = 200 * 1000 * 1000;

struct Result {
  double id;
  int code;
};

struct State;
using StateRef = std::shared_ptr<State>;
void CallJs(Napi::Env env, Napi::Function onResult, StateRef* state, Result* result);
using Tsfn = Napi::TypedThreadSafeFunction<StateRef, Result, CallJs>;

struct State {
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  // The request the thread should take next, if any.
  bool queued = false;
  double queuedId = 0;
  SharedMemory queuedMem;
  uint32_t* queuedWord = nullptr;
  uint32_t queuedExpected = 0;
  int64_t queuedDeadline = -1;
  // The wait the thread is in now (0: none), and a cancel for it.
  double activeId = 0;
  uint32_t* activeWord = nullptr;
  double cancelId = 0;
  Tsfn tsfn;
  std::thread thread;
  bool joined = false;
};

// Runs on the loop's thread. The function holds its own reference to the
// state (freed by its finalizer), so results queued before the Waiter was
// collected still find it.
void CallJs(Napi::Env env, Napi::Function onResult, StateRef* state, Result* result) {
  std::unique_ptr<Result> owned(result);
  if (env == nullptr) return;  // torn down
  (*state)->tsfn.Unref(env);
  onResult.Call({Napi::Number::New(env, result->id), Napi::Number::New(env, result->code)});
}

void Run(StateRef s) {
  std::unique_lock<std::mutex> lock(s->mu);
  for (;;) {
    s->cv.wait(lock, [&] { return s->queued || s->stopping; });
    if (s->stopping) break;
    double id = s->queuedId;
    SharedMemory mem = std::move(s->queuedMem);
    uint32_t* word = s->queuedWord;
    uint32_t expected = s->queuedExpected;
    int64_t deadline = s->queuedDeadline;
    s->queued = false;
    s->activeId = id;
    s->activeWord = word;
    int code = kWaitTimedOut;
    while (!s->stopping && s->cancelId != id) {
      lock.unlock();
      int64_t slice = MonotonicNow() + kSliceNs;
      bool sliced = deadline < 0 || slice < deadline;
      code = FutexWaitUntil(word, expected, sliced ? slice : deadline);
      lock.lock();
      if (code != kWaitTimedOut || !sliced) break;
    }
    if (s->stopping || s->cancelId == id) code = kWaitCancelled;
    s->activeId = 0;
    s->activeWord = nullptr;
    mem.keepAlive.reset();
    if (s->stopping) break;
    s->tsfn.NonBlockingCall(new Result{id, code});
  }
  lock.unlock();
  s->tsfn.Release();
}

// Stops and joins the thread; safe to call more than once.
void Stop(const StateRef& s) {
  {
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->joined) return;
    s->joined = true;
    s->stopping = true;
    if (s->activeWord != nullptr) FutexWake(s->activeWord, INT_MAX);
  }
  s->cv.notify_one();
  s->thread.join();
}

}  // namespace

class Waiter : public Napi::ObjectWrap<Waiter> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Waiter",
                       {InstanceMethod<&Waiter::Wait>("wait"),
                        InstanceMethod<&Waiter::Cancel>("cancel"),
                        InstanceMethod<&Waiter::Close>("close")});
  }

  // new Waiter(onResult: (id: number, code: number) => void)
  explicit Waiter(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Waiter>(info) {
    Napi::Env env = info.Env();
    state_ = std::make_shared<State>();
    state_->tsfn = Tsfn::New(env, info[0].As<Napi::Function>(), "shm-channel:wait", 0, 1,
                             new StateRef(state_),
                             [](Napi::Env, void*, StateRef* ref) { delete ref; });
    state_->tsfn.Unref(env);
    state_->thread = std::thread(Run, state_);
    napi_add_env_cleanup_hook(env, Cleanup, this);
    hooked_ = true;
  }

  ~Waiter() override { Shutdown(); }

 private:
  static void Cleanup(void* self) {
    Waiter* w = static_cast<Waiter*>(self);
    w->hooked_ = false;
    Stop(w->state_);
  }

  void Shutdown() {
    if (hooked_) {
      napi_remove_env_cleanup_hook(Env(), Cleanup, this);
      hooked_ = false;
    }
    Stop(state_);
  }

  // wait(id, sab, byteOffset, expected, timeoutMs)
  void Wait(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    double id = info[0].As<Napi::Number>().DoubleValue();
    SharedMemory mem;
    if (!GetSharedMemory(env, info[1], &mem)) {
      Napi::TypeError::New(env, "expected a SharedArrayBuffer").ThrowAsJavaScriptException();
      return;
    }
    int64_t offset = info[2].As<Napi::Number>().Int64Value();
    if (offset < 0 || offset % 4 != 0 || static_cast<uint64_t>(offset) + 4 > mem.length) {
      Napi::RangeError::New(env, "word offset out of range or unaligned")
          .ThrowAsJavaScriptException();
      return;
    }
    uint32_t expected = info[3].As<Napi::Number>().Uint32Value();
    double timeoutMs = info[4].As<Napi::Number>().DoubleValue();
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      if (state_->stopping) {
        Napi::Error::New(env, "waiter is closed").ThrowAsJavaScriptException();
        return;
      }
      state_->queued = true;
      state_->queuedId = id;
      state_->queuedWord =
          reinterpret_cast<uint32_t*>(static_cast<char*>(mem.data) + offset);
      state_->queuedMem = std::move(mem);
      state_->queuedExpected = expected;
      state_->queuedDeadline =
          timeoutMs < 1e15 ? MonotonicNow() + static_cast<int64_t>(timeoutMs * 1e6) : -1;
    }
    // A pending wait keeps the process alive, as a pending socket read does.
    state_->tsfn.Ref(env);
    state_->cv.notify_one();
  }

  // cancel(id): the wait ends soon with code 3 (cancelled).
  void Cancel(const Napi::CallbackInfo& info) {
    double id = info[0].As<Napi::Number>().DoubleValue();
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->cancelId = id;
    // Waking the word may wake other waiters on it too; every waiter in this
    // project re-checks its condition after waking, so that is harmless.
    if (state_->activeId == id && state_->activeWord != nullptr) {
      FutexWake(state_->activeWord, INT_MAX);
    }
  }

  void Close(const Napi::CallbackInfo&) { Shutdown(); }

  StateRef state_;
  bool hooked_ = false;
};

void InitWaiter(Napi::Env env, Napi::Object exports) {
  exports.Set("Waiter", Waiter::Define(env));
}

}  // namespace shm
