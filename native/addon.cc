// Registration only: each concept lives in its own file.
#include <napi.h>

#include "futex.h"
#include "region.h"
#include "thread-exit.h"
#include "waiter.h"

#ifndef SHM_CHANNEL_SOURCE_HASH
#define SHM_CHANNEL_SOURCE_HASH "unknown"
#endif

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  shm::InitRegion(env, exports);
  shm::InitFutex(env, exports);
  shm::InitWaiter(env, exports);
  shm::InitThreadExit(env, exports);
  // Lets a test prove that the binary that loaded was built from these sources.
  exports.Set("sourceHash", Napi::String::New(env, SHM_CHANNEL_SOURCE_HASH));
  return exports;
}

}  // namespace

NODE_API_MODULE(NODE_GYP_MODULE_NAME, Init)
