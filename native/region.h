#pragma once

#include <napi.h>

namespace shm {
void InitRegion(Napi::Env env, Napi::Object exports);
}
