/* Phone sequences for the channel and rerank tests, written as phone ids
 * with 0 between words.  Header-only, like tap.h. */
#ifndef ERD_TEST_PHONES_H
#define ERD_TEST_PHONES_H

#include <stddef.h>
#include <stdint.h>

#include "phonetics/pho_inventory.h"

/* Tokens from phone ids; a word starts at index 0 and after each 0 in ids. */
static inline size_t phones_tokens(const unsigned *ids, size_t n, pho_token *out)
{
    size_t m = 0;
    int ws = 1;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == 0) {
            ws = 1;
            continue;
        }
        out[m++] = (pho_token){.phone = (uint8_t)ids[i], .word_start = (uint8_t)ws};
        ws = 0;
    }
    return m;
}

#endif
