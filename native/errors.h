// Errors shaped like Node's own fs errors: code, errno (negative, as in libuv),
// syscall and, where there is one, path.
#pragma once

#include <napi.h>
#include <uv.h>

#include <string>

namespace shm {

inline Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall,
                              const std::string& path = std::string()) {
  const char* code = uv_err_name(-err);
  std::string message = std::string(code) + ": " + uv_strerror(-err) + ", " + syscall;
  if (!path.empty()) message += " '" + path + "'";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, -err));
  error.Set("syscall", Napi::String::New(env, syscall));
  if (!path.empty()) error.Set("path", Napi::String::New(env, path));
  return error;
}

}  // namespace shm
