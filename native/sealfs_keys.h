/* AES-SIV and HKDF entry points of the sealfs addon (sealfs_keys.c). */
#ifndef SEALFS_KEYS_H
#define SEALFS_KEYS_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A Uint8Array argument's bytes (sealfs_aead.c); on anything else throws a TypeError naming
 * `what` and returns false.
 */
bool get_bytes(napi_env env, napi_value value, const char *what, uint8_t **data, size_t *len);

/* Adds sivEncrypt, sivDecrypt and hkdfSha256 to the addon's exports. */
bool sealfs_keys_register(napi_env env, napi_value exports);

#endif
