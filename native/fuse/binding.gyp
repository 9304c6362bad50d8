{
  # Builds native/fuse/build/Release/sealfs_fuse.node (run through scripts/build-native.mjs):
  # the FUSE session of a mount, on libfuse3's low-level API (Debian: libfuse3-dev).
  "targets": [
    {
      "target_name": "sealfs_fuse",
      "sources": ["sealfs_fuse.c"],
      "cflags!": ["-O0", "-O1", "-O2"],
      "cflags": ["-O2", "-std=gnu11", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)"],
      "conditions": [["OS=='linux'", {"ldflags": ["-Wl,-z,now"]}]]
    }
  ]
}
