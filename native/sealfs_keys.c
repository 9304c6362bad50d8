/*
 * Name encryption and key derivation through OpenSSL, for the same addon as the AEAD core:
 * AES-SIV (RFC 5297, 512-bit key) for names and symlink targets, HKDF-SHA256 (RFC 5869) for
 * per-file keys. Both run once or twice for every file a program creates or opens, where
 * the JavaScript versions cost 30–90 µs a call (@noble/ciphers' SIV, and node:crypto's
 * hkdfSync, which fetches its KDF anew each time) and OpenSSL's take a few µs. The results
 * are the same bytes (src/vault/names.ts and src/crypto/kdf.ts keep the JavaScript versions
 * for machines without the addon; test/native.test.ts compares them).
 */
#include "sealfs_keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define SIV_KEY_BYTES 64
#define SIV_TAG_BYTES 16
#define MAX_HKDF_BYTES (255 * 32)

static EVP_CIPHER *g_siv;
static EVP_KDF *g_hkdf;
static uv_once_t g_keys_once = UV_ONCE_INIT;

static void fetch_key_algorithms(void) {
  g_siv = EVP_CIPHER_fetch(NULL, "AES-256-SIV", NULL);
  g_hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
  ERR_clear_error();
}

/* A new Uint8Array of `len` bytes; *data points at its memory. */
static napi_value new_bytes(napi_env env, size_t len, uint8_t **data) {
  napi_value buffer, array;
  void *mem;
  if (napi_create_arraybuffer(env, len, &mem, &buffer) != napi_ok ||
      napi_create_typedarray(env, napi_uint8_array, len, buffer, 0, &array) != napi_ok) {
    return NULL;
  }
  *data = mem;
  return array;
}

static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "too few arguments");
    return false;
  }
  return true;
}

static bool siv_key(napi_env env, napi_value value, uint8_t **key) {
  size_t len;
  if (!get_bytes(env, value, "key", key, &len)) return false;
  if (len != SIV_KEY_BYTES) {
    napi_throw_range_error(env, NULL, "AES-SIV key must be 64 bytes");
    return false;
  }
  if (g_siv == NULL) {
    napi_throw_error(env, NULL, "AES-256-SIV is not available from this Node's OpenSSL");
    return false;
  }
  return true;
}

/* sivEncrypt(key, ad, plain) → V ‖ C (RFC 5297), with `ad` as the one associated-data string. */
static napi_value js_siv_encrypt(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint8_t *key, *ad, *plain, *out;
  size_t ad_len, plain_len;
  int outl;
  if (!get_args(env, info, 3, argv) || !siv_key(env, argv[0], &key) || !get_bytes(env, argv[1], "ad", &ad, &ad_len) ||
      !get_bytes(env, argv[2], "plain", &plain, &plain_len)) {
    return NULL;
  }
  napi_value result = new_bytes(env, SIV_TAG_BYTES + plain_len, &out);
  if (result == NULL) return NULL;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  const bool ok = ctx != NULL && EVP_EncryptInit_ex2(ctx, g_siv, key, NULL, NULL) == 1 &&
                  EVP_EncryptUpdate(ctx, NULL, &outl, ad, (int)ad_len) == 1 &&
                  EVP_EncryptUpdate(ctx, out + SIV_TAG_BYTES, &outl, plain, (int)plain_len) == 1 &&
                  EVP_EncryptFinal_ex(ctx, out + SIV_TAG_BYTES + plain_len, &outl) == 1 &&
                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, SIV_TAG_BYTES, out) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    ERR_clear_error();
    napi_throw_error(env, NULL, "sealfs native: AES-SIV encryption failed");
    return NULL;
  }
  return result;
}

/* sivDecrypt(key, ad, sealed) → the plaintext, or null when it does not authenticate. */
static napi_value js_siv_decrypt(napi_env env, napi_callback_info info) {
  napi_value argv[3], result;
  uint8_t *key, *ad, *sealed, *out;
  size_t ad_len, sealed_len;
  int outl;
  if (!get_args(env, info, 3, argv) || !siv_key(env, argv[0], &key) || !get_bytes(env, argv[1], "ad", &ad, &ad_len) ||
      !get_bytes(env, argv[2], "sealed", &sealed, &sealed_len)) {
    return NULL;
  }
  if (sealed_len < SIV_TAG_BYTES) {
    napi_get_null(env, &result);
    return result;
  }
  const size_t plain_len = sealed_len - SIV_TAG_BYTES;
  result = new_bytes(env, plain_len, &out);
  if (result == NULL) return NULL;
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  const bool ok = ctx != NULL && EVP_DecryptInit_ex2(ctx, g_siv, key, NULL, NULL) == 1 &&
                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, SIV_TAG_BYTES, sealed) == 1 &&
                  EVP_DecryptUpdate(ctx, NULL, &outl, ad, (int)ad_len) == 1 &&
                  EVP_DecryptUpdate(ctx, out, &outl, sealed + SIV_TAG_BYTES, (int)plain_len) == 1 &&
                  EVP_DecryptFinal_ex(ctx, out + plain_len, &outl) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    ERR_clear_error();
    OPENSSL_cleanse(out, plain_len); /* never hand out unauthenticated bytes */
    napi_get_null(env, &result);
  }
  return result;
}

/* hkdfSha256(ikm, salt, info, length) → length bytes of HKDF-SHA256 output. */
static napi_value js_hkdf_sha256(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  uint8_t *ikm, *salt, *label, *out;
  size_t ikm_len, salt_len, label_len;
  uint32_t length;
  if (!get_args(env, info, 4, argv) || !get_bytes(env, argv[0], "ikm", &ikm, &ikm_len) ||
      !get_bytes(env, argv[1], "salt", &salt, &salt_len) || !get_bytes(env, argv[2], "info", &label, &label_len)) {
    return NULL;
  }
  if (napi_get_value_uint32(env, argv[3], &length) != napi_ok || length == 0 || length > MAX_HKDF_BYTES) {
    napi_throw_range_error(env, NULL, "HKDF length must be 1 to 8160 bytes");
    return NULL;
  }
  if (g_hkdf == NULL) {
    napi_throw_error(env, NULL, "HKDF is not available from this Node's OpenSSL");
    return NULL;
  }
  napi_value result = new_bytes(env, length, &out);
  if (result == NULL) return NULL;
  OSSL_PARAM params[5], *p = params;
  *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
  *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, ikm, ikm_len);
  *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, salt_len);
  *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, label, label_len);
  *p = OSSL_PARAM_construct_end();
  EVP_KDF_CTX *kctx = EVP_KDF_CTX_new(g_hkdf);
  const bool ok = kctx != NULL && EVP_KDF_derive(kctx, out, length, params) == 1;
  EVP_KDF_CTX_free(kctx);
  if (!ok) {
    ERR_clear_error();
    napi_throw_error(env, NULL, "sealfs native: HKDF failed");
    return NULL;
  }
  return result;
}

bool sealfs_keys_register(napi_env env, napi_value exports) {
  uv_once(&g_keys_once, fetch_key_algorithms);
  const napi_property_descriptor props[] = {
      {"sivEncrypt", NULL, js_siv_encrypt, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sivDecrypt", NULL, js_siv_decrypt, NULL, NULL, NULL, napi_enumerable, NULL},
      {"hkdfSha256", NULL, js_hkdf_sha256, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
