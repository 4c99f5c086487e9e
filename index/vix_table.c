/* The entity table of a built index in a file of its own, beside the index
 * ("<index file>.ents"), so that a server maps it instead of reading and
 * tokenising every name from SQLite (at a million entities that took
 * 17-100 s; mapping and fixing pointers takes well under one).
 *
 * Layout, like the erd IVF file's: a header, then aligned arrays exactly as
 * a loaded vix__set holds them (entities sorted by rowid, string arena,
 * rerank phrases, packed phones, rowid slot table), the pointers inside
 * entities and phrases written as offsets into their arenas.  A reader maps
 * the file privately and turns the offsets back into pointers in place: the
 * entity and phrase arrays become the process's own pages, the arenas and
 * the slot table stay shared file pages.
 *
 * The header names the index file and the catalog generation the table was
 * made for; a table for another index is stale and refused (ERD_ENOTFOUND),
 * one whose sizes or offsets do not add up is corrupt (ERD_ECORRUPT).
 * Either way the caller reads the entities from SQLite as before.  Files do
 * not travel between architectures: the byte order and the struct sizes are
 * part of the header. */
#include "index/vix_resolve_internal.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/erd_file.h"

#define VIX__TABLE_MAGIC "ERDENT01"
#define VIX__TABLE_VERSION 1
#define VIX__TABLE_ORDER 0x01020304u
#define VIX__TABLE_SUFFIX ".ents"

typedef struct vix__table_header {
    char magic[8];
    uint32_t version, order;
    uint32_t entity_size, phrase_size;
    int64_t generation;
    char index_file[512]; /* the index's file name, without its folder */
    uint64_t n_entities, strings_len, n_phrases, phones_len, slot_n;
    int64_t slot_lo;
    uint64_t off_entities, off_strings, off_phrases, off_phones, off_slot, file_len;
} vix__table_header;

int vix_index_table_path(const char *index_path, char *out, size_t outcap)
{
    int n = snprintf(out, outcap, "%s%s", index_path, VIX__TABLE_SUFFIX);
    return n < 0 || (size_t)n >= outcap ? ERD_ETOOLONG : ERD_OK;
}

static const char *vix__base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static uint64_t vix__align64(uint64_t x)
{
    return (x + 63) / 64 * 64;
}

/* Offsets of every array for the counts in h. */
static void vix__table_layout(vix__table_header *h)
{
    h->off_entities = vix__align64(sizeof *h);
    h->off_phrases = vix__align64(h->off_entities + h->n_entities * h->entity_size);
    h->off_slot = vix__align64(h->off_phrases + h->n_phrases * h->phrase_size);
    h->off_strings = vix__align64(h->off_slot + h->slot_n * sizeof(uint32_t));
    h->off_phones = vix__align64(h->off_strings + h->strings_len);
    h->file_len = h->off_phones + h->phones_len;
}

static int vix__table_put(FILE *f, const void *p, size_t len, uint64_t at)
{
    static const char zero[64];
    long pos = ftell(f);
    if (pos < 0 || (uint64_t)pos > at)
        return ERD_EIO;
    if ((uint64_t)pos < at && fwrite(zero, 1, (size_t)(at - (uint64_t)pos), f) != at - (uint64_t)pos)
        return ERD_EIO;
    return len == 0 || fwrite(p, 1, len, f) == len ? ERD_OK : ERD_EIO;
}

/* Entities and phrases go out a run at a time, offsets for pointers and
 * no heap bytes in the padding. */
static void vix__entity_to_disk(const vix__set *c, size_t i, void *out)
{
    const vix__entity *e = &c->entities[i];
    vix__entity *d = out;
    d->rowid = e->rowid;
    d->ext_id = (const char *)(uintptr_t)(e->ext_id - c->strings);
    d->name = (const char *)(uintptr_t)(e->name - c->strings);
    d->phrases = (const vix_rerank_phrase *)(uintptr_t)(e->phrases - c->phrases);
    d->n_phrases = e->n_phrases;
}

static void vix__phrase_to_disk(const vix__set *c, size_t i, void *out)
{
    const vix_rerank_phrase *p = &c->phrases[i];
    vix_rerank_phrase *d = out;
    d->tokens = (const uint8_t *)(uintptr_t)(p->tokens - c->phones);
    d->n = p->n;
    d->derived = p->derived;
}

#define VIX__TABLE_RUN 256

static int vix__table_put_array(FILE *f, const vix__set *c, size_t n, size_t size,
                                void (*to_disk)(const vix__set *, size_t, void *), uint64_t at)
{
    _Alignas(max_align_t) unsigned char run[VIX__TABLE_RUN * 64];
    int rc = size <= 64 ? vix__table_put(f, NULL, 0, at) : ERD_EINTERNAL;
    for (size_t i = 0; rc == ERD_OK && i < n; i += VIX__TABLE_RUN) {
        size_t m = n - i < VIX__TABLE_RUN ? n - i : VIX__TABLE_RUN;
        memset(run, 0, m * size);
        for (size_t j = 0; j < m; j++)
            to_disk(c, i + j, run + j * size);
        rc = fwrite(run, size, m, f) == m ? ERD_OK : ERD_EIO;
    }
    return rc;
}

int vix__table_write(const vix__set *c, const char *path, const char *index_path,
                     int64_t generation, erd_diag *diag)
{
    vix__table_header h = {.version = VIX__TABLE_VERSION,
                           .order = VIX__TABLE_ORDER,
                           .entity_size = sizeof(vix__entity),
                           .phrase_size = sizeof(vix_rerank_phrase),
                           .generation = generation,
                           .n_entities = c->n_entities,
                           .strings_len = c->strings_len,
                           .n_phrases = c->n_phrases,
                           .phones_len = c->phones_len,
                           .slot_n = c->slot ? c->slot_n : 0,
                           .slot_lo = c->slot ? c->slot_lo : 0};
    const char *name = vix__base_name(index_path);
    if (c->map)
        return erd_fail(diag, ERD_EINVAL, "entity table %s: written from a loaded table", path);
    if (strlen(name) >= sizeof h.index_file)
        return erd_fail(diag, ERD_ETOOLONG, "entity table: index file name %s too long", name);
    memcpy(h.magic, VIX__TABLE_MAGIC, sizeof h.magic);
    snprintf(h.index_file, sizeof h.index_file, "%s", name);
    vix__table_layout(&h);
    char tmp[2100];
    FILE *f = NULL;
    int rc = erd_file_temp(path, tmp, sizeof tmp, &f, diag);
    if (rc < 0)
        return rc;
    rc = vix__table_put(f, &h, sizeof h, 0);
    if (rc == ERD_OK)
        rc = vix__table_put_array(f, c, c->n_entities, sizeof *c->entities,
                                  vix__entity_to_disk, h.off_entities);
    if (rc == ERD_OK)
        rc = vix__table_put_array(f, c, c->n_phrases, sizeof *c->phrases, vix__phrase_to_disk,
                                  h.off_phrases);
    if (rc == ERD_OK)
        rc = vix__table_put(f, c->slot, h.slot_n * sizeof *c->slot, h.off_slot);
    if (rc == ERD_OK)
        rc = vix__table_put(f, c->strings, c->strings_len, h.off_strings);
    if (rc == ERD_OK)
        rc = vix__table_put(f, c->phones, c->phones_len, h.off_phones);
    if (rc < 0) {
        rc = erd_fail(diag, ERD_EIO, "writing entity table %s: %s", tmp, strerror(errno));
        erd_file_discard(f, tmp);
        return rc;
    }
    return erd_file_commit(f, tmp, path, diag);
}

/* The header against the file's size and the index it is meant for. */
static int vix__table_check_header(const vix__table_header *h, size_t len, const char *path,
                                   const char *index_path, int64_t generation, erd_diag *diag)
{
    vix__table_header e;
    if (memcmp(h->magic, VIX__TABLE_MAGIC, sizeof h->magic) != 0 ||
        h->version != VIX__TABLE_VERSION || h->order != VIX__TABLE_ORDER ||
        h->entity_size != sizeof(vix__entity) || h->phrase_size != sizeof(vix_rerank_phrase))
        return erd_fail(diag, ERD_ECORRUPT,
                        "entity table %s: not an erd entity table of version %d for this machine",
                        path, VIX__TABLE_VERSION);
    if (memchr(h->index_file, 0, sizeof h->index_file) == NULL ||
        h->n_entities >= UINT32_MAX || h->n_entities > len || h->n_phrases > len ||
        h->strings_len > len || h->phones_len > len || h->slot_n > len)
        return erd_fail(diag, ERD_ECORRUPT, "entity table %s: header out of range", path);
    e = *h;
    vix__table_layout(&e);
    if (memcmp(&e, h, sizeof e) != 0 || e.file_len != len)
        return erd_fail(diag, ERD_ECORRUPT, "entity table %s: layout does not match its size",
                        path);
    if (strcmp(h->index_file, vix__base_name(index_path)) != 0 || h->generation != generation)
        return erd_fail(diag, ERD_ENOTFOUND,
                        "entity table %s: made for %s (generation %lld), not for this index",
                        path, h->index_file, (long long)h->generation);
    return ERD_OK;
}

/* Offsets back to pointers, every one checked to fall inside its arena:
 * a table that passes cannot send a reader outside the mapping. */
static int vix__table_fix(vix__set *c, bool phrases, const char *path, erd_diag *diag)
{
    if (c->strings_len && c->strings[c->strings_len - 1] != '\0')
        return erd_fail(diag, ERD_ECORRUPT, "entity table %s: string arena unterminated", path);
    for (size_t i = 0; i < c->n_phrases; i++) {
        uintptr_t off = (uintptr_t)c->phrases[i].tokens;
        if (off > c->phones_len || c->phrases[i].n > c->phones_len - off ||
            c->phrases[i].n > VIX_RR_TOKENS_MAX)
            return erd_fail(diag, ERD_ECORRUPT, "entity table %s: phrase %zu", path, i);
        c->phrases[i].tokens = c->phones + off;
    }
    for (size_t i = 0; i < c->n_entities; i++) {
        vix__entity *e = &c->entities[i];
        uintptr_t id = (uintptr_t)e->ext_id, name = (uintptr_t)e->name;
        uintptr_t first = (uintptr_t)e->phrases;
        if (id >= c->strings_len || name >= c->strings_len || first > c->n_phrases ||
            e->n_phrases > c->n_phrases - first || (i && e->rowid <= e[-1].rowid))
            return erd_fail(diag, ERD_ECORRUPT, "entity table %s: entity %zu", path, i);
        uint64_t at = (uint64_t)e->rowid - (uint64_t)c->slot_lo;
        if (c->slot && (at >= c->slot_n || c->slot[at] != i + 1))
            return erd_fail(diag, ERD_ECORRUPT, "entity table %s: slot of entity %zu", path, i);
        e->ext_id = c->strings + id;
        e->name = c->strings + name;
        /* without rerank a resolver keeps no phrases (as its SQLite load) */
        e->phrases = phrases ? c->phrases + first : NULL;
        e->n_phrases = phrases ? e->n_phrases : 0;
    }
    size_t used = 0;
    for (size_t i = 0; i < c->slot_n; i++)
        used += c->slot[i] != 0;
    if (used != (c->slot ? c->n_entities : 0))
        return erd_fail(diag, ERD_ECORRUPT, "entity table %s: slot table", path);
    return ERD_OK;
}

int vix__table_map(const char *path, const char *index_path, int64_t generation, bool phrases,
                   vix__set *ret, erd_diag *diag)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return erd_fail(diag, errno == ENOENT ? ERD_ENOTFOUND : ERD_EIO, "entity table %s: %s",
                        path, strerror(errno));
    struct stat sb;
    vix__table_header h;
    void *map = MAP_FAILED;
    int rc = ERD_OK;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || pread(fd, &h, sizeof h, 0) != sizeof h)
        rc = erd_fail(diag, ERD_ECORRUPT, "entity table %s: truncated header", path);
    if (rc == ERD_OK)
        rc = vix__table_check_header(&h, (size_t)sb.st_size, path, index_path, generation, diag);
    if (rc == ERD_OK && (map = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE,
                                    fd, 0)) == MAP_FAILED)
        rc = erd_fail(diag, ERD_EIO, "entity table %s: mmap: %s", path, strerror(errno));
    close(fd);
    if (rc < 0)
        return rc;
    char *base = map;
    vix__set c = {.entities = (vix__entity *)(base + h.off_entities),
                  .n_entities = (size_t)h.n_entities,
                  .strings = base + h.off_strings,
                  .strings_len = (size_t)h.strings_len,
                  .phrases = (vix_rerank_phrase *)(base + h.off_phrases),
                  .n_phrases = (size_t)h.n_phrases,
                  .phones = (uint8_t *)(base + h.off_phones),
                  .phones_len = (size_t)h.phones_len,
                  .slot = h.slot_n ? (uint32_t *)(base + h.off_slot) : NULL,
                  .slot_lo = h.slot_lo,
                  .slot_n = (size_t)h.slot_n,
                  .map = map,
                  .map_len = (size_t)sb.st_size};
    if ((rc = vix__table_fix(&c, phrases, path, diag)) < 0) {
        munmap(map, (size_t)sb.st_size);
        return rc;
    }
    /* fixed: nothing writes to it again */
    mprotect(map, (size_t)sb.st_size, PROT_READ);
    *ret = c;
    return ERD_OK;
}

void vix__table_remove(const char *index_path)
{
    char path[2100];
    if (vix_index_table_path(index_path, path, sizeof path) == ERD_OK)
        unlink(path);
}
