// Ends held by worker threads share their process's pid, so a peer that
// checks pids cannot see such a thread end. Node runs an environment's
// cleanup hooks on its own thread when the environment ends (worker.terminate()
// included), after JavaScript has stopped: a hook stores the values the
// thread registered into shared memory, so the peer finds the mark (for
// channel ends: a start time no process has, see lib/liveness.ts).
#include "thread-exit.h"

#include <cstdint>
#include <unordered_map>

#include "sab.h"

namespace shm {
namespace {

struct Mark {
  SharedMemory mem;  // keeps the memory alive until the hook ran
  uint32_t* word;
  uint32_t value;
};

struct Marks {
  std::unordered_map<uint32_t, Mark> byId;
  uint32_t nextId = 1;
};

// One environment per thread, and its hooks run on that thread.
thread_local Marks* marks = nullptr;

void StoreMarks(void* arg) {
  Marks* m = static_cast<Marks*>(arg);
  for (auto& entry : m->byId) __atomic_store_n(entry.second.word, entry.second.value, __ATOMIC_SEQ_CST);
  if (marks == m) marks = nullptr;
  delete m;
}

// markOnThreadExit(sab, byteOffset, value) -> id: stores the 32-bit value at
// the aligned word when this thread's environment ends, unless cancelled.
Napi::Value MarkOnThreadExit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SharedMemory mem;
  if (!GetSharedMemory(env, info[0], &mem)) {
    Napi::TypeError::New(env, "expected a SharedArrayBuffer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int64_t offset = info[1].As<Napi::Number>().Int64Value();
  if (offset < 0 || offset % 4 != 0 || static_cast<uint64_t>(offset) + 4 > mem.length) {
    Napi::RangeError::New(env, "word offset out of range or unaligned").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint32_t value = info[2].As<Napi::Number>().Uint32Value();
  if (marks == nullptr) {
    marks = new Marks();
    napi_add_env_cleanup_hook(env, StoreMarks, marks);
  }
  uint32_t id = marks->nextId++;
  uint32_t* word = reinterpret_cast<uint32_t*>(static_cast<char*>(mem.data) + offset);
  marks->byId.emplace(id, Mark{std::move(mem), word, value});
  return Napi::Number::New(env, id);
}

// cancelMarkOnThreadExit(id): forgets a mark (the end was closed properly).
Napi::Value CancelMarkOnThreadExit(const Napi::CallbackInfo& info) {
  if (marks != nullptr) marks->byId.erase(info[0].As<Napi::Number>().Uint32Value());
  return info.Env().Undefined();
}

}  // namespace

void InitThreadExit(Napi::Env env, Napi::Object exports) {
  exports.Set("markOnThreadExit", Napi::Function::New(env, MarkOnThreadExit, "markOnThreadExit"));
  exports.Set("cancelMarkOnThreadExit", Napi::Function::New(env, CancelMarkOnThreadExit, "cancelMarkOnThreadExit"));
}

}  // namespace shm
