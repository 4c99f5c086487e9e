/* Replacing a file so that a reader, or the next start after a crash or a
 * power cut, finds either the old file or the whole new one: write a
 * temporary beside it, flush it to the disk, rename it over the old one,
 * then flush the directory that holds the new name.  Every file erd writes
 * for later (models, channels, calibrations, indexes, snapshots) goes
 * through here. */
#ifndef ERD_FILE_H
#define ERD_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "proto/erd_error.h"

/* Creates a new temporary file for path ("<path>.tmp.<pid>", which must not
 * exist yet) and opens it for writing.  The caller owns *ret_f and passes
 * it on to erd_file_commit or erd_file_discard; ret_tmp (tmp_cap bytes)
 * receives the temporary's name.  Nothing is set on failure. */
int erd_file_temp(const char *path, char *ret_tmp, size_t tmp_cap, FILE **ret_f, erd_diag *diag);

/* Takes f (always closed on return): flushes it to the disk and renames tmp
 * to path, then flushes path's directory.  On failure tmp is removed and
 * path is as it was (unless only the directory flush failed: the rename
 * has happened then, but may not survive a crash). */
int erd_file_commit(FILE *f, const char *tmp, const char *path, erd_diag *diag);

/* Closes f (NULL is fine) and removes tmp (NULL or "" is fine). */
void erd_file_discard(FILE *f, const char *tmp);

/* The whole cycle for len bytes held in memory. */
int erd_file_replace(const char *path, const void *data, size_t len, erd_diag *diag);

/* Flushes the directory holding path, so a rename or a new name in it
 * survives a crash. */
int erd_file_sync_dir(const char *path, erd_diag *diag);

#endif
