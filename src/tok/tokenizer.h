/* tokenizer.h — text <-> token ids, built from a GGUF file's tokenizer.* metadata.
 *
 * Two families, as tokenizer.ggml.model names them:
 *   "llama": SentencePiece-style: spaces become U+2581, pieces merged greedily by
 *            score, unknown bytes fall back to <0xNN> byte tokens.
 *   "gpt2":  byte-level BPE: a pre-tokenizer regex (named by tokenizer.ggml.pre)
 *            splits the text, bytes map to printable code points, merges apply in
 *            rank order.
 * Output must match llama.cpp's llama_tokenize token for token (tests/data/refdata
 * has the vectors). */
#ifndef RG_TOK_TOKENIZER_H
#define RG_TOK_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "formats/gguf.h"

typedef struct rg_tokenizer rg_tokenizer;

typedef enum rg_token_attr {
    RG_TOKEN_UNDEFINED = 0,    /* no or an unknown token_type, or an invalid id */
    RG_TOKEN_NORMAL = 1,       /* GGUF token_type values */
    RG_TOKEN_UNKNOWN = 2,
    RG_TOKEN_CONTROL = 3,
    RG_TOKEN_USER_DEFINED = 4,
    RG_TOKEN_UNUSED = 5,
    RG_TOKEN_BYTE = 6,
} rg_token_attr;

/* Build from metadata. Errors: missing/ill-typed keys, unknown model or pre-tokenizer
 * names (a clear error, never a silent fallback), token ids out of range.
 * Ownership: the tokenizer copies what it needs; g may be closed afterwards. */
rg_status rg_tokenizer_load(const rg_gguf *g, rg_tokenizer **out, rg_err *err);
void rg_tokenizer_free(rg_tokenizer *t);

/* Tokenize len bytes of text (need not be NUL-terminated, may contain invalid
 * UTF-8, which is tokenized as bytes/replacement exactly as llama.cpp does).
 * add_special: prepend BOS / append EOS as the model's add_bos/add_eos flags say.
 * parse_special: recognize control/user-defined token texts (e.g. "<|im_start|>")
 * inside the text. Writes up to max_tokens ids; returns the total count needed
 * (call again with a larger buffer if it exceeds max_tokens), or -1 on error. */
int64_t rg_tokenize(const rg_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                    int32_t *tokens, int64_t max_tokens, rg_err *err);

/* The bytes a token stands for in output text (byte tokens -> their byte,
 * U+2581 -> space, byte-level BPE code points -> bytes; control tokens -> empty
 * unless render_special). Writes up to size bytes, returns the full length
 * (may exceed size), or -1 for an invalid id. Not NUL-terminated. */
int64_t rg_token_to_piece(const rg_tokenizer *t, int32_t id, bool render_special, char *buf, size_t size);

/* Decode a sequence into text: the pieces concatenated, NUL-terminated, truncated
 * to size; returns the full length (without the NUL), or -1 if an id is invalid.
 * When the model adds a space prefix (tokenizer.ggml.add_space_prefix, SentencePiece
 * by default), one leading space of the first token's piece is dropped, as
 * llama.cpp's llama_detokenize(remove_special=false) does. Unlike llama.cpp, no
 * "clean up spaces" pass is applied (" ?" stays " ?"), so text without special
 * tokens decodes back to exactly what was tokenized. */
int64_t rg_detokenize(const rg_tokenizer *t, const int32_t *ids, int64_t n, bool render_special, char *buf,
                      size_t size);

/* Streaming decode: feed one token at a time, get back only complete UTF-8
 * characters; bytes of a character split across tokens are held until it
 * completes (invalid sequences are flushed as U+FFFD). */
typedef struct rg_detok_stream {
    unsigned char pending[8];
    int n_pending;
} rg_detok_stream;
/* Writes the text completed by this token to out (size bytes, NUL-terminated) and
 * returns its length (it may exceed size - 1 if out is too small); -1 for an invalid
 * id. Control tokens add nothing. */
int64_t rg_detok_stream_push(const rg_tokenizer *t, rg_detok_stream *s, int32_t id, char *out, size_t size);
/* Flush held bytes at the end of a stream (as U+FFFD for incomplete characters). */
int64_t rg_detok_stream_flush(rg_detok_stream *s, char *out, size_t size);

/* Vocabulary facts. */
int32_t rg_tokenizer_n_vocab(const rg_tokenizer *t);
const char *rg_tokenizer_model(const rg_tokenizer *t);   /* "llama" or "gpt2" */
const char *rg_tokenizer_pre(const rg_tokenizer *t);     /* pre-tokenizer name, "" for SPM */
const char *rg_token_text(const rg_tokenizer *t, int32_t id); /* raw vocabulary string; NULL for an invalid id */
rg_token_attr rg_token_attr_of(const rg_tokenizer *t, int32_t id);
int32_t rg_token_bos(const rg_tokenizer *t);   /* -1 if none */
int32_t rg_token_eos(const rg_tokenizer *t);   /* -1 if none */
int32_t rg_token_eot(const rg_tokenizer *t);   /* end-of-turn (e.g. <|im_end|>, <|eot_id|>), -1 if none */
bool rg_tokenizer_add_bos(const rg_tokenizer *t);
bool rg_tokenizer_add_eos(const rg_tokenizer *t);
/* True for ids generation should stop at (EOS, EOT and other end-of-generation tokens). */
bool rg_token_is_eog(const rg_tokenizer *t, int32_t id);

#endif
