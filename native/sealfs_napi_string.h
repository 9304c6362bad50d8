/*
 * A JavaScript string argument as a malloc'ed, NUL-terminated UTF-8 C string that the caller
 * frees, or NULL when the value is not a string (or memory ran out). Shared by both addons.
 */
#ifndef SEALFS_NAPI_STRING_H
#define SEALFS_NAPI_STRING_H

#include <node_api.h>
#include <stdlib.h>

static inline char *sealfs_napi_string(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *text = malloc(len + 1);
  if (text && napi_get_value_string_utf8(env, v, text, len + 1, &len) != napi_ok) {
    free(text);
    return NULL;
  }
  return text;
}

#endif
