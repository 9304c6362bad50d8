/*
 * sealfs native AEAD backend.
 *
 * Seals and opens runs of consecutive chunks of one file with OpenSSL's EVP AEAD
 * interface, using the libcrypto that Node itself links and exports (no separate
 * OpenSSL is loaded). The chunk format is the one of src/crypto/run.ts and geometry.ts:
 *
 *   stored chunk k = nonce (12) || ciphertext (len_k) || tag (16)
 *   AAD of chunk k = header || uint64be(firstIndex + k) || final flag (1 byte)
 *
 * where every chunk holds chunkSize plaintext bytes except possibly the run's last one,
 * and the final flag is 1 only for the run's last chunk and only when the run ends the
 * file.
 *
 * Exports (all arguments are validated; see src/crypto/backends/native.ts):
 *   seal(cipherId, key, header, chunkSize, firstIndex, endsFile, plain, out, nonces?)
 *   open(cipherId, key, header, chunkSize, firstIndex, endsFile, sealed, out) -> number
 *   sealAsync(..., plain, out, nonces | null, threads) -> Promise<void>
 *   openAsync(..., sealed, out, threads) -> Promise<number>
 *   runGeometry(chunkSize, length, isSealed) -> { count, plainLength, sealedLength,
 *     lastLength } | null: the run of `length` plaintext bytes, or of `length` stored bytes
 *     (null: no run has that length); for test/geometry.native.test.ts
 *   opensslVersion: string
 *
 * open returns -1 when every chunk verified, else the run-relative index of the first
 * chunk that failed; the output is zeroed from that chunk to its end, so no unverified
 * plaintext is left behind. The async forms spread the run over `threads` threads that
 * claim its chunks a few at a time (see CLAIM_BYTES): the calling thread and `threads` - 1
 * workers on libuv's thread pool (see start_batch for why the caller takes part).
 *
 * Buffers may overlap (in-place use) when a forward pass cannot overwrite input it has
 * not read yet: for seal when plain starts at least 28 * (chunks - 1) bytes after out
 * (e.g. the plaintext sits at the tail of the output buffer), for open when out starts
 * no more than 28 bytes after sealed (e.g. out = sealed.subarray(0, plainLength)).
 * Overlapping runs are processed by a single thread.
 */
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>
#include "sealfs_keys.h"
#include "sealfs_process.h"
#include "sealfs_fsat.h"
#include <uv.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/rand.h>

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if !defined(OPENSSL_VERSION_MAJOR) || OPENSSL_VERSION_MAJOR < 3
#error "sealfs_aead needs OpenSSL 3 headers: Node's own, under <nodedir>/include/node/openssl"
#endif

#define KEY_BYTES 32
#define NONCE_BYTES 12
#define TAG_BYTES 16
#define CHUNK_OVERHEAD (NONCE_BYTES + TAG_BYTES)
#define AAD_SUFFIX_BYTES 9
/* Header bytes that fit the on-stack AAD buffer; longer headers use one malloc per run. */
#define AAD_STACK_BYTES 256
#define MAX_HEADER_BYTES 65536
/* Nonces drawn per RAND_bytes call: one DRBG call per batch instead of per chunk. */
#define NONCE_BATCH 64
/*
 * Plaintext an async worker claims at a time: a few chunks, at least one. Claiming instead
 * of a fixed split into `threads` equal parts matters on a shared or busy machine: a worker
 * whose core is taken by another process, or whose thread is slow to wake up (~45 us on a
 * virtual machine whose idle vCPUs halt), then simply gets less of the run, while with
 * equal parts the whole call waited for its part, up to twice as long as one thread alone.
 * 256 KiB is ~80 us of work: an atomic add per claim is noise, and the last claims even out.
 */
#define CLAIM_BYTES ((size_t)256 * 1024)
/*
 * How long the calling thread of an async run, once no chunk is left to claim, waits for
 * the workers' claims in progress (at most one each, ~80 us) before it returns and leaves
 * the settling to the thread pool's completion callback. A worker stalled longer than this
 * (its core taken away) is not waited for.
 */
#define CALLER_WAIT_NS 300000L
#define MAX_CHUNK_SIZE ((size_t)1 << 30)
#define MAX_THREADS 64
#define MAX_SAFE_INTEGER 9007199254740991.0

#define CIPHER_AES_256_GCM 1
#define CIPHER_CHACHA20_POLY1305 2

#define OPEN_OK (-1LL)
#define OPEN_ERROR (-2LL)
#define NO_FAILURE LLONG_MAX

/* ------------------------------------------------------------------------------------ */
/* Ciphers, fetched once per process and shared (read-only) by every thread.            */

static EVP_CIPHER *g_ciphers[3];
static uv_once_t g_fetch_once = UV_ONCE_INIT;

static void fetch_ciphers(void) {
  g_ciphers[CIPHER_AES_256_GCM] = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
  g_ciphers[CIPHER_CHACHA20_POLY1305] = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
  ERR_clear_error();
}

/* ------------------------------------------------------------------------------------ */
/* Run geometry (docs/FORMAT.md §4). The same rules as runOfPlain and runOfSealed in      */
/* src/crypto/geometry.ts; test/geometry.native.test.ts checks that the two agree.       */

typedef struct {
  uint64_t count;      /* chunks in the run: all chunk_size plaintext bytes but the last */
  uint64_t plain_len;  /* plaintext bytes of the run */
  uint64_t sealed_len; /* stored bytes: plain_len + CHUNK_OVERHEAD per chunk */
  uint64_t last_len;   /* plaintext bytes of the last chunk: 1..chunk_size, 0 if it is the only one */
} geometry_t;

/* The run that seals plain_len bytes; an empty run is one empty chunk. */
static geometry_t geometry_of_plain(uint64_t chunk_size, uint64_t plain_len) {
  geometry_t g;
  g.count = plain_len == 0 ? 1 : (plain_len - 1) / chunk_size + 1;
  g.plain_len = plain_len;
  g.sealed_len = plain_len + CHUNK_OVERHEAD * g.count;
  g.last_len = plain_len - (g.count - 1) * chunk_size;
  return g;
}

/*
 * The run stored in sealed_len bytes. False when no writer produces that length: no chunk
 * at all, a last stored chunk shorter than nonce and tag, or an empty chunk after others.
 */
static bool geometry_of_sealed(uint64_t chunk_size, uint64_t sealed_len, geometry_t *g) {
  const uint64_t stored = chunk_size + CHUNK_OVERHEAD;
  if (sealed_len == 0) return false;
  const uint64_t count = (sealed_len - 1) / stored + 1;
  const uint64_t last_stored = sealed_len - (count - 1) * stored;
  if (last_stored < CHUNK_OVERHEAD || (last_stored == CHUNK_OVERHEAD && count > 1)) return false;
  g->count = count;
  g->sealed_len = sealed_len;
  g->plain_len = sealed_len - CHUNK_OVERHEAD * count;
  g->last_len = last_stored - CHUNK_OVERHEAD;
  return true;
}

/* ------------------------------------------------------------------------------------ */
/* The work itself: plain C, no N-API, safe to run on any thread.                       */

typedef struct {
  const EVP_CIPHER *cipher;
  const uint8_t *key; /* KEY_BYTES */
  const uint8_t *header;
  size_t header_len;
  size_t chunk_size;
  uint64_t first_index; /* file-wide index of the run's first chunk */
  bool ends_file;
  size_t count;     /* chunks in the run */
  size_t plain_len; /* plaintext bytes of the whole run */
  const uint8_t *in;
  uint8_t *out;
  const uint8_t *nonces; /* NONCE_BYTES per chunk, or NULL: fresh random nonces */
  bool overlapping;      /* in and out share bytes: one forward pass only */
} run_t;

static inline size_t chunk_len(const run_t *r, size_t k) {
  return k + 1 < r->count ? r->chunk_size : r->plain_len - (r->count - 1) * r->chunk_size;
}

static inline bool overlaps(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  return alen > 0 && blen > 0 && (uintptr_t)a < (uintptr_t)b + blen && (uintptr_t)b < (uintptr_t)a + alen;
}

/* Associated data: header || uint64be(index) || final flag, built once per sub-run. */
typedef struct {
  uint8_t *buf;
  size_t len;
  uint8_t stack[AAD_STACK_BYTES + AAD_SUFFIX_BYTES];
} aad_t;

static bool aad_init(aad_t *a, const run_t *r) {
  a->len = r->header_len + AAD_SUFFIX_BYTES;
  a->buf = a->len <= sizeof a->stack ? a->stack : malloc(a->len);
  if (a->buf == NULL) return false;
  if (r->header_len > 0) memcpy(a->buf, r->header, r->header_len);
  return true;
}

static inline void aad_set(aad_t *a, const run_t *r, size_t k) {
  uint64_t index = r->first_index + k;
  uint8_t *p = a->buf + r->header_len;
  for (int i = 7; i >= 0; i--) {
    p[i] = (uint8_t)index;
    index >>= 8;
  }
  p[8] = (r->ends_file && k + 1 == r->count) ? 1 : 0;
}

static void aad_free(aad_t *a) {
  if (a->buf != NULL && a->buf != a->stack) free(a->buf);
  a->buf = NULL;
}

/*
 * What one thread needs to seal or open chunks of a run: one EVP_CIPHER_CTX with the key
 * set once (each chunk then only re-initialises the IV) and the AAD buffer.
 */
typedef struct {
  EVP_CIPHER_CTX *ctx;
  aad_t aad;
} worker_t;

static void worker_free(worker_t *w) {
  aad_free(&w->aad);
  EVP_CIPHER_CTX_free(w->ctx); /* frees the provider context, which cleanses the key schedule */
  w->ctx = NULL;
}

static bool worker_init(worker_t *w, const run_t *r, bool seal) {
  w->aad.buf = NULL;
  w->ctx = EVP_CIPHER_CTX_new();
  const bool ok = w->ctx != NULL && aad_init(&w->aad, r) &&
                  EVP_CipherInit_ex(w->ctx, r->cipher, NULL, r->key, NULL, seal ? 1 : 0) == 1;
  if (!ok) {
    worker_free(w);
    ERR_clear_error();
  }
  return ok;
}

/* Seals chunks [start, end) of the run. Returns false on an OpenSSL failure. */
static bool seal_chunks(worker_t *w, const run_t *r, size_t start, size_t end) {
  const size_t stored = r->chunk_size + CHUNK_OVERHEAD;
  uint8_t batch[NONCE_BATCH * NONCE_BYTES];
  size_t have = 0, used = 0;
  bool ok = false;
  int outl;
  EVP_CIPHER_CTX *ctx = w->ctx;
  aad_t *aad = &w->aad;

  for (size_t k = start; k < end; k++) {
    const size_t len = chunk_len(r, k);
    uint8_t *slot = r->out + k * stored;
    uint8_t *body = slot + NONCE_BYTES;
    const uint8_t *src = r->in + k * r->chunk_size;
    const uint8_t *nonce;

    if (r->nonces != NULL) {
      nonce = r->nonces + k * NONCE_BYTES;
    } else {
      if (used == have) {
        have = end - k < NONCE_BATCH ? end - k : NONCE_BATCH;
        used = 0;
        if (RAND_bytes(batch, (int)(have * NONCE_BYTES)) != 1) goto done;
      }
      nonce = batch + NONCE_BYTES * used++;
    }
    aad_set(aad, r, k);
    if (src != body && overlaps(src, len, body, len)) {
      memmove(body, src, len);
      src = body;
    }
    if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1) goto done;
    if (EVP_EncryptUpdate(ctx, NULL, &outl, aad->buf, (int)aad->len) != 1) goto done;
    if (len > 0 && (EVP_EncryptUpdate(ctx, body, &outl, src, (int)len) != 1 || (size_t)outl != len)) goto done;
    if (EVP_EncryptFinal_ex(ctx, body + len, &outl) != 1 || outl != 0) goto done;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_BYTES, body + len) != 1) goto done;
    /* Written last: with overlapping buffers the slot may still have held plaintext. */
    memcpy(slot, nonce, NONCE_BYTES);
  }
  ok = true;
done:
  if (!ok) ERR_clear_error();
  return ok;
}

/* Seals chunks [start, end) with a context of its own. */
static bool seal_range(const run_t *r, size_t start, size_t end) {
  worker_t w;
  if (!worker_init(&w, r, true)) return false;
  const bool ok = seal_chunks(&w, r, start, end);
  worker_free(&w);
  return ok;
}

static void note_failure(atomic_llong *stop, long long k) {
  long long cur = atomic_load_explicit(stop, memory_order_relaxed);
  while (k < cur && !atomic_compare_exchange_weak_explicit(stop, &cur, k, memory_order_relaxed, memory_order_relaxed)) {
  }
}

/*
 * Opens chunks [start, end) of the run. Returns OPEN_OK, the run-relative index of the
 * first chunk of the range that failed authentication, or OPEN_ERROR (an OpenSSL
 * failure); in the last two cases the range's output is zeroed from that chunk on.
 * `stop` (async only) holds the smallest index any thread found failing: chunks after it
 * are not worth decrypting, since they will be zeroed, so the range stops there.
 */
static long long open_chunks(worker_t *w, const run_t *r, size_t start, size_t end, atomic_llong *stop) {
  const size_t stored = r->chunk_size + CHUNK_OVERHEAD;
  long long result = OPEN_ERROR;
  size_t k = start;
  int outl;
  EVP_CIPHER_CTX *ctx = w->ctx;
  aad_t *aad = &w->aad;

  for (; k < end; k++) {
    if (stop != NULL && (long long)k > atomic_load_explicit(stop, memory_order_relaxed)) {
      result = OPEN_OK;
      goto zero;
    }
    const size_t len = chunk_len(r, k);
    const uint8_t *slot = r->in + k * stored;
    const uint8_t *src = slot + NONCE_BYTES;
    uint8_t *dst = r->out + k * r->chunk_size;
    uint8_t nonce[NONCE_BYTES], tag[TAG_BYTES];

    /* Copied first: with overlapping buffers the plaintext may land on them. */
    memcpy(nonce, slot, NONCE_BYTES);
    memcpy(tag, src + len, TAG_BYTES);
    if (src != dst && overlaps(src, len, dst, len)) {
      memmove(dst, src, len);
      src = dst;
    }
    aad_set(aad, r, k);
    if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1) goto fail;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_BYTES, tag) != 1) goto fail;
    if (EVP_DecryptUpdate(ctx, NULL, &outl, aad->buf, (int)aad->len) != 1) goto fail;
    if (len > 0 && (EVP_DecryptUpdate(ctx, dst, &outl, src, (int)len) != 1 || (size_t)outl != len)) goto fail;
    if (EVP_DecryptFinal_ex(ctx, dst + len, &outl) != 1) {
      result = (long long)k;
      goto fail;
    }
  }
  result = OPEN_OK;
  goto done;
fail:
  if (stop != NULL) note_failure(stop, (long long)k);
  ERR_clear_error();
zero:
  if (k < end) {
    const size_t from = k * r->chunk_size;
    const size_t to = end == r->count ? r->plain_len : end * r->chunk_size;
    memset(r->out + from, 0, to - from);
  }
done:
  return result;
}

/* Opens chunks [start, end) with a context of its own; see open_chunks. */
static long long open_range(const run_t *r, size_t start, size_t end, atomic_llong *stop) {
  worker_t w;
  if (!worker_init(&w, r, false)) {
    if (stop != NULL) note_failure(stop, (long long)start);
    memset(r->out + start * r->chunk_size, 0, (end == r->count ? r->plain_len : end * r->chunk_size) - start * r->chunk_size);
    return OPEN_ERROR;
  }
  const long long result = open_chunks(&w, r, start, end, stop);
  worker_free(&w);
  return result;
}

/* ------------------------------------------------------------------------------------ */
/* Argument handling.                                                                  */

static uint8_t g_empty[1];

#define NAPI_CALL(env, call)                                            \
  do {                                                                  \
    if ((call) != napi_ok) {                                            \
      throw_pending_or(env, "sealfs native: N-API call failed: " #call); \
      return NULL;                                                      \
    }                                                                   \
  } while (0)

static void throw_pending_or(napi_env env, const char *message) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && !pending) napi_throw_error(env, NULL, message);
}

static bool fail_type(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return false;
}

static bool fail_range(napi_env env, const char *message) {
  napi_throw_range_error(env, NULL, message);
  return false;
}

/* Declared in sealfs_keys.h: sealfs_keys.c reads its byte arguments the same way. */
bool get_bytes(napi_env env, napi_value value, const char *what, uint8_t **data, size_t *len) {
  char message[96];
  bool is_typed = false;
  napi_typedarray_type type;
  void *ptr = NULL;
  size_t length = 0;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, value, &type, &length, &ptr, NULL, NULL) != napi_ok ||
      (type != napi_uint8_array && type != napi_uint8_clamped_array)) {
    snprintf(message, sizeof message, "%s must be a Uint8Array", what);
    return fail_type(env, message);
  }
  *data = ptr != NULL ? (uint8_t *)ptr : g_empty;
  *len = ptr != NULL ? length : 0;
  return true;
}

static bool get_integer(napi_env env, napi_value value, const char *what, double min, double max, double *out) {
  char message[128];
  double d;
  if (napi_get_value_double(env, value, &d) != napi_ok) {
    snprintf(message, sizeof message, "%s must be a number", what);
    return fail_type(env, message);
  }
  if (!(d >= min && d <= max) || d != (double)(int64_t)d) {
    snprintf(message, sizeof message, "%s must be an integer from %.0f to %.0f, got %g", what, min, max, d);
    return fail_range(env, message);
  }
  *out = d;
  return true;
}

static bool is_nullish(napi_env env, napi_value value) {
  napi_valuetype type;
  return napi_typeof(env, value, &type) == napi_ok && (type == napi_undefined || type == napi_null);
}

/* argv[0..5]: cipherId, key, header, chunkSize, firstIndex, endsFile. */
static bool parse_run_prefix(napi_env env, napi_value *argv, run_t *r) {
  char message[128];
  double id, chunk, first;
  uint8_t *key, *header;
  size_t key_len, header_len;
  bool ends;

  memset(r, 0, sizeof *r);
  if (!get_integer(env, argv[0], "cipher id", 1, 2, &id)) return false;
  r->cipher = g_ciphers[(int)id];
  if (r->cipher == NULL) {
    snprintf(message, sizeof message, "%s is not available from this Node's OpenSSL",
             (int)id == CIPHER_AES_256_GCM ? "AES-256-GCM" : "ChaCha20-Poly1305");
    napi_throw_error(env, NULL, message);
    return false;
  }
  if (!get_bytes(env, argv[1], "key", &key, &key_len)) return false;
  if (key_len != KEY_BYTES) {
    snprintf(message, sizeof message, "key must be %d bytes, got %zu", KEY_BYTES, key_len);
    return fail_range(env, message);
  }
  if (!get_bytes(env, argv[2], "header", &header, &header_len)) return false;
  if (header_len > MAX_HEADER_BYTES) return fail_range(env, "header is too long");
  if (!get_integer(env, argv[3], "chunk size", 1, (double)MAX_CHUNK_SIZE, &chunk)) return false;
  if (!get_integer(env, argv[4], "first chunk index", 0, MAX_SAFE_INTEGER, &first)) return false;
  if (napi_get_value_bool(env, argv[5], &ends) != napi_ok) return fail_type(env, "endsFile must be a boolean");
  r->key = key;
  r->header = header;
  r->header_len = header_len;
  r->chunk_size = (size_t)chunk;
  r->first_index = (uint64_t)first;
  r->ends_file = ends;
  return true;
}

/* Takes the run's geometry; a short last chunk must end the file (checkRunEnd, geometry.ts). */
static bool set_geometry(napi_env env, run_t *r, const geometry_t *g) {
  char message[160];
  r->plain_len = (size_t)g->plain_len;
  r->count = (size_t)g->count;
  if (g->last_len < r->chunk_size && !r->ends_file) {
    snprintf(message, sizeof message, "chunk %llu is short (%llu bytes) but not the file's final chunk",
             (unsigned long long)(r->first_index + g->count - 1), (unsigned long long)g->last_len);
    return fail_range(env, message);
  }
  return true;
}

static bool parse_seal(napi_env env, napi_value *argv, run_t *r) {
  char message[160];
  uint8_t *plain, *out, *nonces = NULL;
  size_t plain_len, out_len, nonces_len = 0, expected;

  if (!parse_run_prefix(env, argv, r)) return false;
  if (!get_bytes(env, argv[6], "plain", &plain, &plain_len)) return false;
  if (!get_bytes(env, argv[7], "out", &out, &out_len)) return false;
  if (!is_nullish(env, argv[8]) && !get_bytes(env, argv[8], "nonces", &nonces, &nonces_len)) return false;
  const geometry_t g = geometry_of_plain(r->chunk_size, plain_len);
  if (!set_geometry(env, r, &g)) return false;
  expected = (size_t)g.sealed_len;
  if (out_len != expected) {
    snprintf(message, sizeof message, "output buffer is %zu bytes, expected %zu", out_len, expected);
    return fail_range(env, message);
  }
  if (nonces != NULL) {
    if (nonces_len < NONCE_BYTES * r->count) {
      snprintf(message, sizeof message, "nonces buffer is %zu bytes, expected %zu", nonces_len, NONCE_BYTES * r->count);
      return fail_range(env, message);
    }
    if (overlaps(nonces, NONCE_BYTES * r->count, out, out_len)) return fail_range(env, "nonces must not overlap out");
  }
  if (overlaps(plain, plain_len, out, out_len)) {
    /* Chunk k's writes end at out + (k+1)(C+28); chunk k+1 reads from plain + (k+1)C. */
    if (r->count > 1 && (uintptr_t)plain < (uintptr_t)out + CHUNK_OVERHEAD * (r->count - 1)) {
      return fail_range(env, "plain overlaps out so that sealing would overwrite unread plaintext");
    }
    r->overlapping = true;
  }
  r->in = plain;
  r->out = out;
  r->nonces = nonces;
  return true;
}

static bool parse_open(napi_env env, napi_value *argv, run_t *r) {
  char message[160];
  uint8_t *sealed, *out;
  size_t sealed_len, out_len;
  geometry_t g;

  if (!parse_run_prefix(env, argv, r)) return false;
  if (!get_bytes(env, argv[6], "sealed", &sealed, &sealed_len)) return false;
  if (!get_bytes(env, argv[7], "out", &out, &out_len)) return false;
  /* The same checks, in the same order, as openingGeometry (run.ts). */
  if (!geometry_of_sealed(r->chunk_size, sealed_len, &g)) {
    snprintf(message, sizeof message, "%zu bytes is not a whole run of stored chunks", sealed_len);
    return fail_range(env, message);
  }
  if (out_len != g.plain_len) {
    snprintf(message, sizeof message, "output buffer is %zu bytes, expected %llu", out_len, (unsigned long long)g.plain_len);
    return fail_range(env, message);
  }
  if (!set_geometry(env, r, &g)) return false;
  if (overlaps(sealed, sealed_len, out, out_len)) {
    /* Chunk k's writes end at out + (k+1)C; chunk k+1 reads from sealed + (k+1)(C+28). */
    if (r->count > 1 && (uintptr_t)out > (uintptr_t)sealed + CHUNK_OVERHEAD) {
      return fail_range(env, "out overlaps sealed so that opening would overwrite unread chunks");
    }
    r->overlapping = true;
  }
  r->in = sealed;
  r->out = out;
  return true;
}

/* ------------------------------------------------------------------------------------ */
/* Synchronous entry points.                                                           */

static napi_value js_seal(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  run_t r;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 8) {
    napi_throw_type_error(env, NULL, "seal expects 8 or 9 arguments");
    return NULL;
  }
  if (argc < 9) napi_get_undefined(env, &argv[8]);
  if (!parse_seal(env, argv, &r)) return NULL;
  if (!seal_range(&r, 0, r.count)) {
    napi_throw_error(env, NULL, "sealfs native: OpenSSL failed to seal");
    return NULL;
  }
  return NULL;
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8], result;
  run_t r;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 8) {
    napi_throw_type_error(env, NULL, "open expects 8 arguments");
    return NULL;
  }
  if (!parse_open(env, argv, &r)) return NULL;
  const long long failed = open_range(&r, 0, r.count, NULL);
  if (failed == OPEN_ERROR) {
    napi_throw_error(env, NULL, "sealfs native: OpenSSL failed to open");
    return NULL;
  }
  NAPI_CALL(env, napi_create_int64(env, failed, &result));
  return result;
}

/* ------------------------------------------------------------------------------------ */
/* Asynchronous entry points: sub-runs on libuv's thread pool, one promise.             */

struct batch;

typedef struct {
  struct batch *batch;
  napi_async_work work;
} part_t;

typedef struct batch {
  run_t run;
  bool is_open;
  uint8_t key[KEY_BYTES]; /* private copies: JS may reuse its buffers meanwhile */
  uint8_t *header;
  napi_deferred deferred;
  napi_ref refs[3]; /* in, out, nonces: kept alive until the last part completes */
  size_t ref_count;
  size_t part_count, pending;
  size_t claim;       /* chunks per claim */
  atomic_size_t next; /* first chunk not claimed yet */
  atomic_int busy;    /* claims being processed right now */
  atomic_llong stop;  /* smallest failing chunk index, NO_FAILURE if none */
  atomic_bool error;
  bool settled; /* the promise is settled; the last completing part only frees */
  part_t parts[];
} batch_t;

static void batch_free(napi_env env, batch_t *b) {
  for (size_t i = 0; i < b->ref_count; i++) napi_delete_reference(env, b->refs[i]);
  for (size_t i = 0; i < b->part_count; i++) {
    if (b->parts[i].work != NULL) napi_delete_async_work(env, b->parts[i].work);
  }
  OPENSSL_cleanse(b->key, sizeof b->key);
  free(b->header);
  free(b);
}

/*
 * Claims and processes chunks until none are left (or an OpenSSL failure), on any thread.
 * `busy` counts a claim from before it is taken until its chunks are written, all
 * sequentially consistent: whoever sees `next` past the end and then `busy` at zero knows
 * that every chunk is done and that no thread will write to the output any more.
 */
static void work_on(batch_t *b) {
  const run_t *r = &b->run;
  worker_t w;
  if (atomic_load(&b->next) >= r->count) return; /* all claimed already: skip the key setup */
  if (!worker_init(&w, r, !b->is_open)) {
    atomic_store(&b->error, true);
    return;
  }
  for (;;) {
    atomic_fetch_add(&b->busy, 1);
    const size_t start = atomic_fetch_add(&b->next, b->claim);
    if (start >= r->count) {
      atomic_fetch_sub(&b->busy, 1);
      break;
    }
    const size_t end = r->count - start < b->claim ? r->count : start + b->claim;
    const bool ok = b->is_open ? open_chunks(&w, r, start, end, &b->stop) != OPEN_ERROR : seal_chunks(&w, r, start, end);
    atomic_fetch_sub(&b->busy, 1);
    if (!ok) {
      atomic_store(&b->error, true);
      break;
    }
  }
  worker_free(&w);
}

static void part_execute(napi_env env, void *data) {
  part_t *p = data;
  (void)env;
  work_on(p->batch);
}

static long elapsed_ns(const struct timespec *since) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - since->tv_sec) * 1000000000L + (now.tv_nsec - since->tv_nsec);
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/*
 * After the caller's own claims: true once every chunk is done (no claims left, none in
 * progress), false if a worker's claim is still running after CALLER_WAIT_NS.
 */
static bool wait_for_claims(batch_t *b) {
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (unsigned spins = 0;; spins++) {
    if (atomic_load(&b->busy) == 0) return atomic_load(&b->next) >= b->run.count;
    if (spins % 64 == 63 && elapsed_ns(&start) > CALLER_WAIT_NS) return false;
    cpu_relax();
  }
}

/* Resolves or rejects the promise; the output is final (see work_on). */
static void batch_settle(napi_env env, batch_t *b) {
  napi_value value = NULL;
  const bool error = atomic_load(&b->error);
  const long long stop = atomic_load(&b->stop);
  const run_t *r = &b->run;

  if (b->is_open && (error || stop != NO_FAILURE)) {
    /* Parts after the failure may have finished before they learnt of it. */
    const size_t from = stop == NO_FAILURE ? 0 : (size_t)stop * r->chunk_size;
    memset(r->out + from, 0, r->plain_len - from);
  }
  if (error) {
    napi_value message;
    const char *text = b->is_open ? "sealfs native: OpenSSL failed to open" : "sealfs native: OpenSSL failed to seal";
    if (napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message) == napi_ok &&
        napi_create_error(env, NULL, message, &value) == napi_ok) {
      napi_reject_deferred(env, b->deferred, value);
    }
  } else {
    if (b->is_open) {
      napi_create_int64(env, stop == NO_FAILURE ? OPEN_OK : stop, &value);
    } else {
      napi_get_undefined(env, &value);
    }
    napi_resolve_deferred(env, b->deferred, value);
  }
  b->settled = true;
}

static void part_complete(napi_env env, napi_status status, void *data) {
  part_t *p = data;
  batch_t *b = p->batch;
  if (status != napi_ok && !b->settled) atomic_store(&b->error, true);
  if (--b->pending > 0) return;
  if (!b->settled) batch_settle(env, b);
  batch_free(env, b);
}

/*
 * Starts an async run: `threads` - 1 workers are queued on the thread pool and the calling
 * thread claims chunks too, then waits briefly for the workers' last claims, so that the
 * promise is usually settled before this returns. Why the caller works instead of only
 * waiting: a pool thread that sleeps takes tens of microseconds to wake up (~45 us on a
 * virtual machine whose idle vCPUs halt), and the event loop as long again to wake up for
 * the completion; on a 2 MiB write-back batch (~600 us on one core) those two hand-offs
 * cost as much as the second core gains. The caller's claims hide the first hand-off and
 * waiting removes the second. The event loop is held for about 1/threads of the
 * one-thread time; at worst (no worker starts, the caller does all the work) for as long
 * as the synchronous call plus CALLER_WAIT_NS. A run that overlaps its output (one forward pass)
 * or has a single chunk goes to one pool thread, as before, and leaves the caller free.
 */
static napi_value start_batch(napi_env env, const run_t *r, bool is_open, napi_value *buffers, size_t buffer_count,
                              napi_value threads_value) {
  double threads_d;
  napi_value promise, name;
  size_t threads, parts;
  bool caller_works;
  batch_t *b;

  if (!get_integer(env, threads_value, "threads", 1, MAX_THREADS, &threads_d)) return NULL;
  threads = (size_t)threads_d;
  threads = r->overlapping ? 1 : threads < r->count ? threads : r->count;
  caller_works = threads > 1;
  parts = caller_works ? threads - 1 : 1; /* pool workers */

  b = calloc(1, sizeof *b + parts * sizeof(part_t));
  if (b == NULL) {
    napi_throw_error(env, NULL, "sealfs native: out of memory");
    return NULL;
  }
  b->run = *r;
  b->is_open = is_open;
  memcpy(b->key, r->key, KEY_BYTES);
  b->run.key = b->key;
  if (r->header_len > 0) {
    b->header = malloc(r->header_len);
    if (b->header == NULL) {
      free(b);
      napi_throw_error(env, NULL, "sealfs native: out of memory");
      return NULL;
    }
    memcpy(b->header, r->header, r->header_len);
    b->run.header = b->header;
  }
  b->claim = r->chunk_size >= CLAIM_BYTES ? 1 : CLAIM_BYTES / r->chunk_size;
  atomic_init(&b->next, 0);
  atomic_init(&b->busy, 0);
  atomic_init(&b->stop, NO_FAILURE);
  atomic_init(&b->error, false);
  b->part_count = parts;

  if (napi_create_string_utf8(env, "sealfs:aead", NAPI_AUTO_LENGTH, &name) != napi_ok) goto fail;
  for (size_t i = 0; i < buffer_count; i++) {
    if (napi_create_reference(env, buffers[i], 1, &b->refs[i]) != napi_ok) goto fail;
    b->ref_count++;
  }
  for (size_t i = 0; i < parts; i++) {
    part_t *p = &b->parts[i];
    p->batch = b;
    if (napi_create_async_work(env, NULL, name, part_execute, part_complete, p, &p->work) != napi_ok) goto fail;
  }
  if (napi_create_promise(env, &b->deferred, &promise) != napi_ok) goto fail;
  b->pending = parts;
  for (size_t i = 0; i < parts; i++) {
    if (napi_queue_async_work(env, b->parts[i].work) != napi_ok) {
      /* Parts already queued will complete; settle as a failure once they have. */
      atomic_store(&b->error, true);
      b->pending -= parts - i;
      if (b->pending == 0) {
        batch_settle(env, b);
        batch_free(env, b);
        return promise;
      }
      break;
    }
  }
  if (caller_works) {
    work_on(b);
    if (wait_for_claims(b)) batch_settle(env, b);
  }
  return promise;
fail:
  batch_free(env, b);
  throw_pending_or(env, "sealfs native: could not start the async work");
  return NULL;
}

static napi_value js_seal_async(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  run_t r;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 10) {
    napi_throw_type_error(env, NULL, "sealAsync expects 10 arguments");
    return NULL;
  }
  if (!parse_seal(env, argv, &r)) return NULL;
  return start_batch(env, &r, false, &argv[6], r.nonces != NULL ? 3 : 2, argv[9]);
}

static napi_value js_open_async(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  run_t r;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 9) {
    napi_throw_type_error(env, NULL, "openAsync expects 9 arguments");
    return NULL;
  }
  if (!parse_open(env, argv, &r)) return NULL;
  return start_batch(env, &r, true, &argv[6], 2, argv[8]);
}

/* ------------------------------------------------------------------------------------ */

static bool set_number(napi_env env, napi_value object, const char *name, uint64_t value) {
  napi_value number;
  return napi_create_double(env, (double)value, &number) == napi_ok &&
         napi_set_named_property(env, object, name, number) == napi_ok;
}

/* runGeometry(chunkSize, length, isSealed): see the top of this file. */
static napi_value js_run_geometry(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  double chunk, length;
  bool is_sealed;
  geometry_t g;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "runGeometry expects 3 arguments");
    return NULL;
  }
  if (!get_integer(env, argv[0], "chunk size", 1, (double)MAX_CHUNK_SIZE, &chunk)) return NULL;
  if (!get_integer(env, argv[1], "length", 0, MAX_SAFE_INTEGER, &length)) return NULL;
  if (napi_get_value_bool(env, argv[2], &is_sealed) != napi_ok) {
    napi_throw_type_error(env, NULL, "isSealed must be a boolean");
    return NULL;
  }
  if (is_sealed) {
    if (!geometry_of_sealed((uint64_t)chunk, (uint64_t)length, &g)) {
      NAPI_CALL(env, napi_get_null(env, &result));
      return result;
    }
  } else {
    g = geometry_of_plain((uint64_t)chunk, (uint64_t)length);
  }
  NAPI_CALL(env, napi_create_object(env, &result));
  if (!set_number(env, result, "count", g.count) || !set_number(env, result, "plainLength", g.plain_len) ||
      !set_number(env, result, "sealedLength", g.sealed_len) || !set_number(env, result, "lastLength", g.last_len)) {
    throw_pending_or(env, "sealfs native: could not build the geometry result");
    return NULL;
  }
  return result;
}

/* ------------------------------------------------------------------------------------ */

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_value version;
  uv_once(&g_fetch_once, fetch_ciphers);
  NAPI_CALL(env, napi_create_string_utf8(env, OpenSSL_version(OPENSSL_VERSION), NAPI_AUTO_LENGTH, &version));
  const napi_property_descriptor props[] = {
      {"seal", NULL, js_seal, NULL, NULL, NULL, napi_enumerable, NULL},
      {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sealAsync", NULL, js_seal_async, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openAsync", NULL, js_open_async, NULL, NULL, NULL, napi_enumerable, NULL},
      {"runGeometry", NULL, js_run_geometry, NULL, NULL, NULL, napi_enumerable, NULL},
      {"opensslVersion", NULL, NULL, NULL, NULL, version, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  if (!sealfs_keys_register(env, exports)) return NULL;
  if (!sealfs_process_register(env, exports)) return NULL;
  if (!sealfs_fsat_register(env, exports)) return NULL;
  return exports;
}
