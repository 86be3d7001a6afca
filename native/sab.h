// The one piece that depends on the Node version: turning a mapping into a
// SharedArrayBuffer, and finding the memory behind a SharedArrayBuffer.
#pragma once

#include <node_api.h>

#include <cstddef>
#include <memory>

namespace shm {

// Called once the last SharedArrayBuffer over `data` is gone, on any thread.
using SharedMemoryDeleter = void (*)(void* data, size_t length, void* hint);

// Wraps `length` bytes at `data` as a SharedArrayBuffer that does not own a copy.
napi_value NewExternalSharedArrayBuffer(napi_env env, void* data, size_t length,
                                        SharedMemoryDeleter deleter, void* hint);

// The memory behind a SharedArrayBuffer. `keepAlive` holds the backing store,
// so the memory stays mapped for as long as the caller keeps it.
struct SharedMemory {
  void* data = nullptr;
  size_t length = 0;
  std::shared_ptr<void> keepAlive;
};

// False (and nothing thrown) when `value` is not a SharedArrayBuffer.
bool GetSharedMemory(napi_env env, napi_value value, SharedMemory* out);

}  // namespace shm
