/* Snapshots: one file holding a consistent copy of a store (through
 * SQLite's backup API) and every index file its metadata names, with a
 * checksum over all of it, so read replicas can be fed by copying one file.
 *
 * Layout (integers little-endian):
 *   "ERDSNAP1"  magic
 *   u32 count   files that follow
 *   per file:   u32 name length, name (no '/'), u64 size, the bytes
 *   u64         FNV-1a 64 of every byte before it
 *   "ERDSNEND"  trailer magic
 * The first file is the database, named "erd.db". */
#ifndef VIX_SNAPSHOT_H
#define VIX_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "proto/erd_error.h"

typedef struct vix_snapshot_info {
    uint64_t files;    /* the database and the index files */
    uint64_t bytes;    /* the snapshot's size */
    uint64_t checksum;
} vix_snapshot_info;

/* Writes a snapshot of db_path to out_path (a temporary file, fsynced, then
 * renamed over it).  A rebuild that swaps an index file away while the
 * snapshot is taken makes it start again (a few times at most).  *ret may
 * be NULL. */
int vix_snapshot_write(const char *db_path, const char *out_path, vix_snapshot_info *ret,
                       erd_diag *diag);

/* Checks snap_path's checksum, then unpacks it into dir (created when
 * absent; files in it are replaced) and writes the database's path into
 * ret_db.  ERD_ECORRUPT for a damaged or truncated file: nothing is
 * unpacked then. */
int vix_snapshot_unpack(const char *snap_path, const char *dir, char *ret_db, size_t db_cap,
                        vix_snapshot_info *ret, erd_diag *diag);

#endif
