// The one file that uses V8's API, so the addon is built once per Node ABI
// (docs/node-versions.md has the measurement behind that choice). Node 20's
// Node-API can neither create a SharedArrayBuffer over external memory nor
// read the memory of one; the experimental node_api_create_external_-
// sharedarraybuffer of later Nodes is not used, because a prebuild linked
// against it would not load on an earlier release of the same ABI, and
// GetSharedMemory must keep the memory alive from a waiter thread, which a
// napi_ref (JavaScript thread only) cannot do. A napi_value is a
// v8::Local<v8::Value> under another name (Node's own v8impl casts between the
// two the same way).
#include "sab.h"

#include <v8.h>

#include <cstring>

namespace shm {
namespace {

static_assert(sizeof(napi_value) == sizeof(v8::Local<v8::Value>),
              "napi_value and v8::Local must have the same size");

v8::Local<v8::Value> ToV8(napi_value value) {
  v8::Local<v8::Value> local;
  std::memcpy(static_cast<void*>(&local), &value, sizeof(value));
  return local;
}

napi_value FromV8(v8::Local<v8::Value> local) {
  napi_value value;
  std::memcpy(static_cast<void*>(&value), &local, sizeof(value));
  return value;
}

struct DeleterHint {
  SharedMemoryDeleter deleter;
  void* hint;
};

void DeleteBackingStore(void* data, size_t length, void* deleterData) {
  DeleterHint* d = static_cast<DeleterHint*>(deleterData);
  d->deleter(data, length, d->hint);
  delete d;
}

}  // namespace

napi_value NewExternalSharedArrayBuffer(napi_env env, void* data, size_t length,
                                        SharedMemoryDeleter deleter, void* hint) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  v8::EscapableHandleScope scope(isolate);
  std::unique_ptr<v8::BackingStore> store = v8::SharedArrayBuffer::NewBackingStore(
      data, length, DeleteBackingStore, new DeleterHint{deleter, hint});
  v8::Local<v8::SharedArrayBuffer> sab =
      v8::SharedArrayBuffer::New(isolate, std::move(store));
  return FromV8(scope.Escape(sab));
}

bool GetSharedMemory(napi_env env, napi_value value, SharedMemory* out) {
  v8::Local<v8::Value> local = ToV8(value);
  if (local.IsEmpty() || !local->IsSharedArrayBuffer()) return false;
  std::shared_ptr<v8::BackingStore> store =
      local.As<v8::SharedArrayBuffer>()->GetBackingStore();
  out->data = store->Data();
  out->length = store->ByteLength();
  out->keepAlive = std::move(store);
  return true;
}

}  // namespace shm
