/*
 * Keeps the master key out of core dumps and away from other processes of the same user,
 * for as long as a process holds it (the mount server). Node offers neither call.
 *
 * - RLIMIT_CORE 0 (soft and hard): no core file, whatever the process later asks for.
 * - PR_SET_DUMPABLE 0 (Linux): no core dump either, and ptrace attach, /proc/PID/mem,
 *   /proc/PID/environ and the like are refused to every process without CAP_SYS_PTRACE,
 *   including those of the same user. It does not survive execve, so the process that
 *   holds the key must make the call itself. Root (CAP_SYS_PTRACE) can still read it.
 */
#include "sealfs_process.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

static napi_value throw_errno(napi_env env, const char *what) {
  char message[160];
  snprintf(message, sizeof message, "sealfs native: %s failed: %s", what, strerror(errno));
  napi_throw_error(env, NULL, message);
  return NULL;
}

/* protectProcess(): no core dumps, no ptrace or /proc memory access by unprivileged processes. */
static napi_value js_protect_process(napi_env env, napi_callback_info info) {
  const struct rlimit none = {0, 0};
  if (setrlimit(RLIMIT_CORE, &none) != 0) return throw_errno(env, "setrlimit(RLIMIT_CORE, 0)");
#ifdef __linux__
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return throw_errno(env, "prctl(PR_SET_DUMPABLE, 0)");
#endif
  return NULL;
}

/* isDumpable(): whether this process may still dump core or be traced (always true off Linux). */
static napi_value js_is_dumpable(napi_env env, napi_callback_info info) {
  napi_value result;
#ifdef __linux__
  const int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  if (dumpable < 0) return throw_errno(env, "prctl(PR_GET_DUMPABLE)");
#else
  const int dumpable = 1;
#endif
  napi_get_boolean(env, dumpable != 0, &result);
  return result;
}

bool sealfs_process_register(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"protectProcess", NULL, js_protect_process, NULL, NULL, NULL, napi_enumerable, NULL},
      {"isDumpable", NULL, js_is_dumpable, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
