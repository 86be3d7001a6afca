#pragma once

#include <napi.h>

namespace shm {
void InitWaiter(Napi::Env env, Napi::Object exports);
}
