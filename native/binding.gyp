{
  # Builds native/build/Release/sealfs_aead.node (run through scripts/build-native.mjs).
  # No OpenSSL library is linked: the addon uses the libcrypto symbols that the node
  # executable itself exports, with Node's own headers (<nodedir>/include/node/openssl).
  "targets": [
    {
      "target_name": "sealfs_aead",
      "sources": ["sealfs_aead.c", "sealfs_keys.c", "sealfs_process.c", "sealfs_fsat.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags!": ["-O0", "-O1", "-O2"],
      "cflags": ["-O3", "-std=gnu11", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      # Resolve every symbol at load time: a Node that does not export libcrypto then
      # fails to load the addon (and sealfs falls back to node:crypto) instead of
      # aborting at the first call.
      "conditions": [
        ["OS=='linux'", {"ldflags": ["-Wl,-z,now"]}],
        ["OS=='mac'", {
          "xcode_settings": {
            "GCC_OPTIMIZATION_LEVEL": "3",
            "OTHER_CFLAGS": ["-std=gnu11", "-fvisibility=hidden"]
          }
        }]
      ]
    }
  ]
}
