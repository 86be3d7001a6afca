// Marks left in shared memory when a worker thread ends without cleaning up.
#pragma once

#include <napi.h>

namespace shm {

void InitThreadExit(Napi::Env env, Napi::Object exports);

}  // namespace shm
