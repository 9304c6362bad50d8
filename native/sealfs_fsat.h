/* Confined calls on the cipher folder (sealfs_fsat.c; src/vault/fsat.ts). */
#ifndef SEALFS_FSAT_H
#define SEALFS_FSAT_H

#include <node_api.h>
#include <stdbool.h>

/* Adds fsat, fsatAsync, fsatOpenRoot, fsatForceWalk and fsatNow to the addon's exports. */
bool sealfs_fsat_register(napi_env env, napi_value exports);

#endif
