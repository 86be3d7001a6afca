{
  "targets": [
    {
      "target_name": "shm_channel",
      "sources": [
        "native/addon.cc",
        "native/region.cc",
        "native/futex.cc",
        "native/waiter.cc",
        "native/thread-exit.cc",
        "native/sab.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "SHM_CHANNEL_SOURCE_HASH=\"<!(node scripts/source-hash.js)\""
      ],
      "cflags_cc": [ "-std=c++20", "-Wall", "-Wextra", "-Wno-unused-parameter" ],
      "conditions": [
        [ "OS=='linux'", {
          "ldflags": [ "-Wl,-z,now" ],
          "libraries": [ "-lrt" ]
        } ],
        [ "OS=='mac'", {
          "xcode_settings": {
            "CLANG_CXX_LANGUAGE_STANDARD": "c++20",
            "MACOSX_DEPLOYMENT_TARGET": "11.0",
            "OTHER_LDFLAGS": [ "-Wl,-bind_at_load" ]
          }
        } ]
      ]
    }
  ]
}
