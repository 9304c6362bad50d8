/* Process hardening entry points of the sealfs addon (sealfs_process.c). */
#ifndef SEALFS_PROCESS_H
#define SEALFS_PROCESS_H

#include <node_api.h>
#include <stdbool.h>

/* Adds protectProcess and isDumpable to the addon's exports. */
bool sealfs_process_register(napi_env env, napi_value exports);

#endif
