/* FNV-1a 64: the checksum of every file erd writes (models, channels,
 * calibrations, snapshots, encoder states) and of training data, and the
 * hash of small keys.  One definition, so a file checksummed by one module
 * verifies in another. */
#ifndef ERD_HASH_H
#define ERD_HASH_H

#include <stddef.h>
#include <stdint.h>

#define ERD_FNV1A64_OFFSET 0xcbf29ce484222325ULL

/* Continues hash h (start from ERD_FNV1A64_OFFSET) over data[0..len). */
static inline uint64_t erd_fnv1a64(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#endif
