/* detok.c — token ids back to text: pieces, whole sequences, and streaming.
 *
 * The idea: every token's output bytes are computed once at load (llama.cpp's
 * piece cache): byte tokens give their byte, SentencePiece "▁" gives a space,
 * byte-level BPE code points give their bytes, special tokens give their text.
 * A piece need not be valid UTF-8 on its own (one emoji can be four byte
 * tokens), so the stream decoder holds an incomplete trailing character until
 * the tokens that complete it arrive, and emits only whole characters. */
#include <string.h>

#include "tok/tok_internal.h"

/* Piece of one token into out (room for the token text suffices: no piece is longer); returns its length. */
static size_t make_piece(const rg_tokenizer *t, int32_t id, char *out) {
    size_t len;
    const char *s = tok_text(t, id, &len);
    uint16_t a = t->attr[id];
    if (a & (TA_UNKNOWN | TA_CONTROL | TA_USER_DEFINED)) {
        memcpy(out, s, len);
        return len;
    }
    if (a & TA_NORMAL) {
        size_t o = 0;
        if (t->kind == TOK_SPM) {
            for (size_t i = 0; i < len; i++) {
                if (i + 2 < len && !memcmp(s + i, "\xe2\x96\x81", 3))
                    out[o++] = ' ', i += 2;
                else
                    out[o++] = s[i];
            }
            return o;
        }
        /* Byte-level: each code point is one byte. A token with a code point
         * outside the 256 is output as its text, as Hugging Face's ByteLevel
         * decoder does (llama.cpp writes "[UNK_BYTE_0x..]" there instead). */
        for (size_t i = 0; i < len;) {
            int b = tok_cpt_to_byte(tok_utf8_decode_lenient((const unsigned char *)s, len, &i));
            if (b < 0) {
                memcpy(out, s, len);
                return len;
            }
            out[o++] = (char)b;
        }
        return o;
    }
    if (a & TA_BYTE) { /* "<0xNN>" */
        unsigned v = 0;
        if (len != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return 0;
        for (int k = 3; k < 5; k++) {
            char c = s[k];
            v = v * 16 + (unsigned)(c >= '0' && c <= '9'   ? c - '0'
                                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                           : 0);
        }
        out[0] = (char)v;
        return 1;
    }
    return 0; /* unused / undefined tokens render as nothing */
}

rg_status tok_build_pieces(rg_tokenizer *t, rg_err *err) {
    size_t n = (size_t)t->n_vocab, cap = t->text_off[n] + 1; /* pieces are never longer than texts */
    t->piece = malloc(cap);
    t->piece_off = malloc((n + 1) * sizeof *t->piece_off);
    if (!t->piece || !t->piece_off) return rg_fail(err, RG_E_NOMEM, "out of memory");
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        t->piece_off[i] = off;
        off += make_piece(t, (int32_t)i, t->piece + off);
    }
    t->piece_off[n] = off;
    return RG_OK;
}

/* Piece bytes of id; empty for a special token not rendered. */
static const char *piece_of(const rg_tokenizer *t, int32_t id, bool render_special, size_t *len) {
    if (!render_special && (t->attr[id] & (TA_UNKNOWN | TA_CONTROL))) {
        *len = 0;
        return t->piece;
    }
    *len = t->piece_off[id + 1] - t->piece_off[id];
    return t->piece + t->piece_off[id];
}

int64_t rg_token_to_piece(const rg_tokenizer *t, int32_t id, bool render_special, char *buf, size_t size) {
    if (!t || id < 0 || id >= t->n_vocab) return -1;
    size_t len;
    const char *p = piece_of(t, id, render_special, &len);
    if (len && size) memcpy(buf, p, len < size ? len : size);
    return (int64_t)len;
}

int64_t rg_detokenize(const rg_tokenizer *t, const int32_t *ids, int64_t n, bool render_special, char *buf,
                      size_t size) {
    if (!t || n < 0 || (n && !ids)) return -1;
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) return -1;
        size_t len;
        const char *p = piece_of(t, ids[i], render_special, &len);
        /* the space add_space_prefix put in front of the text (llama.cpp strips one
         * leading space of the first token's piece) */
        if (i == 0 && t->add_space_prefix && len && p[0] == ' ') p++, len--;
        if (total < size) memcpy(buf + total, p, len < size - total ? len : size - total);
        total += len;
    }
    if (size) buf[total < size ? total : size - 1] = '\0';
    return (int64_t)total;
}

/* Append bytes to out[*o] (room for size-1 plus NUL); *o counts all, even what does not fit. */
static void put(char *out, size_t size, size_t *o, const char *p, size_t n) {
    if (*o + 1 < size) memcpy(out + *o, p, n < size - 1 - *o ? n : size - 1 - *o);
    *o += n;
}

int64_t rg_detok_stream_push(const rg_tokenizer *t, rg_detok_stream *s, int32_t id, char *out, size_t size) {
    if (size) out[0] = '\0';
    if (!t || !s || id < 0 || id >= t->n_vocab || s->n_pending < 0 || s->n_pending > 3) return -1;
    size_t plen, o = 0;
    const char *p = piece_of(t, id, false, &plen);
    /* work on pending bytes followed by the piece, without copying the piece */
    size_t np = (size_t)s->n_pending, n = np + plen, i = 0;
    unsigned char buf[8];
    while (i < n) {
        /* gather up to 4 bytes starting at i */
        size_t k = 0;
        for (; k < 4 && i + k < n; k++)
            buf[k] = i + k < np ? s->pending[i + k] : (unsigned char)p[i + k - np];
        int r = tok_utf8_check(buf, k);
        if (r == 0) { /* incomplete at the end: hold it */
            for (size_t j = 0; j < k; j++)
                s->pending[j] = buf[j];
            s->n_pending = (int)k;
            if (size) out[o < size ? o : size - 1] = '\0';
            return (int64_t)o;
        }
        if (r < 0) {
            put(out, size, &o, "\xef\xbf\xbd", 3);
            i += (size_t)-r;
        } else {
            put(out, size, &o, (const char *)buf, (size_t)r);
            i += (size_t)r;
        }
    }
    s->n_pending = 0;
    if (size) out[o < size ? o : size - 1] = '\0';
    return (int64_t)o;
}

int64_t rg_detok_stream_flush(rg_detok_stream *s, char *out, size_t size) {
    size_t o = 0;
    if (s && s->n_pending > 0) put(out, size, &o, "\xef\xbf\xbd", 3);
    if (s) s->n_pending = 0;
    if (size) out[o < size ? o : size - 1] = '\0';
    return (int64_t)o;
}
