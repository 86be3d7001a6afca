// Shared memory objects and mappings: shm_open, shm_unlink, reserving the
// memory, and mmap/munmap. Validation and policy live in lib/region.ts.
#include "region.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <mutex>

#include "errors.h"
#include "sab.h"

namespace shm {
namespace {

// One mapping, shared by the SharedArrayBuffer's deleter and the handle that
// lib/region.ts keeps for close(); whichever is last frees it.
struct Mapping {
  std::mutex mu;
  void* addr;
  size_t size;
  bool released = false;  // close(): the pages are anonymous now
  bool unmapped = false;  // the SharedArrayBuffer is gone
};

using MappingRef = std::shared_ptr<Mapping>;

void DeleteMapping(void* data, size_t length, void* hint) {
  MappingRef* ref = static_cast<MappingRef*>(hint);
  {
    std::lock_guard<std::mutex> lock((*ref)->mu);
    munmap((*ref)->addr, (*ref)->size);
    (*ref)->unmapped = true;
  }
  delete ref;
}

Napi::Value ShmOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  int oflag = info[1].As<Napi::Number>().Int32Value();
  int mode = info[2].As<Napi::Number>().Int32Value();
  int fd;
  do {
    fd = shm_open(name.c_str(), oflag | O_CLOEXEC, static_cast<mode_t>(mode));
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    ErrnoError(env, errno, "shm_open", name).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, fd);
}

Napi::Value ShmUnlink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (shm_unlink(name.c_str()) < 0) {
    ErrnoError(env, errno, "shm_unlink", name).ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

// Backs every page now, so a full /dev/shm is ENOSPC here rather than SIGBUS
// at the first touch of a page that cannot be had.
Napi::Value Allocate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int64_t size = info[1].As<Napi::Number>().Int64Value();
  std::string label = info[2].As<Napi::String>().Utf8Value();
#if defined(__linux__)
  int err;
  do {
    err = posix_fallocate(fd, 0, static_cast<off_t>(size));
  } while (err == EINTR);
  // Some file systems cannot reserve; ftruncate has already sized the file.
  if (err != 0 && err != EOPNOTSUPP && err != ENOSYS) {
    ErrnoError(env, err, "posix_fallocate", label).ThrowAsJavaScriptException();
  }
#else
  (void)fd;
  (void)size;
  (void)label;
#endif
  return env.Undefined();
}

// map(fd, size, writable, label) -> [SharedArrayBuffer, handle]
Napi::Value Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int64_t size = info[1].As<Napi::Number>().Int64Value();
  bool writable = info[2].As<Napi::Boolean>().Value();
  std::string label = info[3].As<Napi::String>().Utf8Value();
  if (size <= 0) {
    Napi::RangeError::New(env, "mapping size must be positive").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* addr = mmap(nullptr, static_cast<size_t>(size), prot, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) {
    ErrnoError(env, errno, "mmap", label).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  MappingRef mapping = std::make_shared<Mapping>();
  mapping->addr = addr;
  mapping->size = static_cast<size_t>(size);
  napi_value sab = NewExternalSharedArrayBuffer(env, addr, mapping->size, DeleteMapping,
                                                new MappingRef(mapping));
  Napi::External<MappingRef> handle = Napi::External<MappingRef>::New(
      env, new MappingRef(mapping), [](Napi::Env, MappingRef* ref) { delete ref; });
  Napi::Array result = Napi::Array::New(env, 2);
  result.Set(0u, Napi::Value(env, sab));
  result.Set(1u, handle);
  return result;
}

// Lets go of the shared object at once while views of the buffer may live on:
// the range is replaced in place by private anonymous pages, so a stale view
// reads zeros and writes go nowhere, instead of a SIGSEGV. The address range
// itself is returned when the SharedArrayBuffer is collected.
Napi::Value Release(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MappingRef* ref = info[0].As<Napi::External<MappingRef>>().Data();
  Mapping& m = **ref;
  std::lock_guard<std::mutex> lock(m.mu);
  if (m.released || m.unmapped) return env.Undefined();
  void* addr = mmap(m.addr, m.size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  if (addr == MAP_FAILED) {
    ErrnoError(env, errno, "mmap").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  m.released = true;
  return env.Undefined();
}

}  // namespace

void InitRegion(Napi::Env env, Napi::Object exports) {
  exports.Set("shmOpen", Napi::Function::New(env, ShmOpen, "shmOpen"));
  exports.Set("shmUnlink", Napi::Function::New(env, ShmUnlink, "shmUnlink"));
  exports.Set("allocate", Napi::Function::New(env, Allocate, "allocate"));
  exports.Set("map", Napi::Function::New(env, Map, "map"));
  exports.Set("release", Napi::Function::New(env, Release, "release"));
}

}  // namespace shm
