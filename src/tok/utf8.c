/* utf8.c — the two UTF-8 readers the tokenizers need.
 *
 * Tokenizing must treat malformed input exactly as llama.cpp does: its decoder is
 * lenient (accepts overlong forms, checks only the continuation-byte pattern) and
 * turns each undecodable byte into U+FFFD. Decoding for output (streaming,
 * validation of vocabulary strings) is strict UTF-8 instead, with the Unicode
 * "maximal subpart" rule for how many bytes one U+FFFD replaces. */
#include "tok/tok_internal.h"

uint32_t tok_utf8_decode_lenient(const unsigned char *s, size_t n, size_t *i) {
    size_t k = *i;
    unsigned char c = s[k];
    size_t need;
    uint32_t cpt;
    if (c < 0x80) {
        *i = k + 1;
        return c;
    }
    if (!(c & 0x40)) goto bad; /* continuation byte as lead */
    if (!(c & 0x20))
        need = 1, cpt = c & 0x1f;
    else if (!(c & 0x10))
        need = 2, cpt = c & 0x0f;
    else if (!(c & 0x08))
        need = 3, cpt = c & 0x07;
    else
        goto bad;
    if (k + need >= n) goto bad; /* truncated */
    for (size_t j = 1; j <= need; j++) {
        if ((s[k + j] & 0xc0) != 0x80) goto bad;
        cpt = cpt << 6 | (s[k + j] & 0x3f);
    }
    *i = k + need + 1;
    return cpt > 0x10ffff ? 0xfffd : cpt;
bad:
    *i = k + 1;
    return 0xfffd;
}

size_t tok_utf8_encode(uint32_t cpt, char *out) {
    if (cpt < 0x80) {
        out[0] = (char)cpt;
        return 1;
    }
    if (cpt < 0x800) {
        out[0] = (char)(0xc0 | cpt >> 6);
        out[1] = (char)(0x80 | (cpt & 0x3f));
        return 2;
    }
    if (cpt < 0x10000) {
        out[0] = (char)(0xe0 | cpt >> 12);
        out[1] = (char)(0x80 | (cpt >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cpt & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cpt >> 18);
    out[1] = (char)(0x80 | (cpt >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cpt >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cpt & 0x3f));
    return 4;
}

int tok_utf8_check(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    int need;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        if (c == 0xe0)
            lo = 0xa0; /* no overlong forms */
        else if (c == 0xed)
            hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f; /* nothing past U+10FFFF */
    } else {
        return -1;
    }
    for (int j = 1; j <= need; j++) {
        if ((size_t)j >= n) return 0;
        unsigned char b = s[j];
        if (j == 1 ? (b < lo || b > hi) : (b & 0xc0) != 0x80) return -j;
    }
    return need + 1;
}

bool tok_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int k = tok_utf8_check(u + i, n - i);
        if (k <= 0) return false;
        i += (size_t)k;
    }
    return true;
}
