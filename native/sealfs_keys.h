/* AES-SIV and HKDF entry points of the sealfs addon (sealfs_keys.c). */
#ifndef SEALFS_KEYS_H
#define SEALFS_KEYS_H

#include <node_api.h>
#include <stdbool.h>

/* Adds sivEncrypt, sivDecrypt and hkdfSha256 to the addon's exports. */
bool sealfs_keys_register(napi_env env, napi_value exports);

#endif
