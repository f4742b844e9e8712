#!/usr/bin/env bash
# run.sh RIDGE_BIN TESTS_DIR — command-line tests of the ridge binary:
#   * `ridge info` on every refdata model and the default model prints the right
#     hyper-parameters and tensor types;
#   * every hostile file in tests/corpus/gguf/bad-* is rejected with exit status 2
#     and one stderr line naming the file; every ok-* file is accepted;
#   * `ridge tokenize --ids` reproduces a refdata tokenizer vector;
#   * `ridge run` and `ridge chat` on the default model: greedy output is the
#     same text twice, chat answers each piped message and keeps the KV cache
#     across turns, bad requests exit with a message.
set -uo pipefail
ridge=$1
tests=$2
repo=$(cd "$tests/.." && pwd)
fails=0
pass=0
TMPDIR_CLI=$(mktemp -d)
trap 'rm -rf "$TMPDIR_CLI"' EXIT
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { pass=$((pass + 1)); }

# expect_info FILE "pattern" ... — each pattern must match a line of `ridge info FILE`.
expect_info() {
  local file=$1; shift
  local out
  if ! out=$("$ridge" info "$file" 2>&1); then fail "ridge info $file exited $?: $out"; return; fi
  for pat in "$@"; do
    if grep -Eq -- "$pat" <<<"$out"; then ok; else fail "ridge info $(basename "$file"): no line matches '$pat'"; fi
  done
}

models=$tests/data/refdata/models
gqa=("n_layer +2$" "n_embd +256$" "n_ff +512$" "n_head +8$" "n_head_kv +2 +\(GQA" "head_dim +32$" "n_vocab +4096$"
     "freq_base 10000" "token_embd.weight")
for q in f32 f16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k_m q5_k_m q6_k; do
  [ -f "$models/ref-gqa-$q.gguf" ] || { fail "missing $models/ref-gqa-$q.gguf"; continue; }
  case $q in
    q4_k_m) types=("^  Q4_K " "^  Q6_K ") ;;
    q5_k_m) types=("^  Q5_K " "^  Q6_K ") ;;
    q4_1) types=("^  Q4_1 " "^  Q6_K ") ;;
    *) types=("^  ${q^^} ") ;;
  esac
  expect_info "$models/ref-gqa-$q.gguf" "${gqa[@]}" "${types[@]}" "output.weight"
done
expect_info "$models/ref-mha-f16.gguf" "n_layer +2$" "n_embd +256$" "n_ff +768$" "n_head +4$" "n_head_kv +4 +\(MHA" \
  "head_dim +64$" "^  F16 "
for q in f16 q8_0; do
  expect_info "$models/ref-mqa-$q.gguf" "n_layer +3$" "n_embd +512$" "n_ff +1024$" "n_head +8$" "n_head_kv +1 +\(MQA" \
    "head_dim +64$" "freq_base 500000" "^  ${q^^} "
done
# KV bytes per token, f16: 2 * n_layer 2 * n_head_kv 2 * head_dim 32 * 2 bytes = 512
expect_info "$models/ref-gqa-f16.gguf" "^  f16 +512 bytes/token"

default=$repo/models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$default" ]; then
  # 2 * 30 layers * 3 KV heads * 64 * 2 bytes = 23040 bytes per token in f16
  expect_info "$default" "architecture +llama$" "n_layer +30$" "n_embd +576$" "n_ff +1536$" "n_head +9$" \
    "n_head_kv +3 +\(GQA" "head_dim +64$" "n_vocab +49152$" "freq_base 100000" "pre-tokenizer smollm" \
    "^  Q4_1 " "^  Q8_0 " "^  f16 +23040 bytes/token" "parameters +134515008"
else
  fail "default model missing: $default (run scripts/fetch-model.sh)"
fi

# Hostile files: exit 2 and exactly one stderr line naming the file.
for f in "$tests"/corpus/gguf/bad-*.gguf; do
  err=$("$ridge" info "$f" 2>&1 >/dev/null); rc=$?
  lines=$(printf '%s\n' "$err" | grep -c .)
  if [ $rc -ne 2 ]; then fail "$(basename "$f"): exit $rc, want 2 ($err)"
  elif [ "$lines" -ne 1 ]; then fail "$(basename "$f"): $lines stderr lines, want 1: $err"
  elif ! grep -qF "$f" <<<"$err"; then fail "$(basename "$f"): message does not name the file: $err"
  else ok; fi
done
for f in "$tests"/corpus/gguf/ok-*.gguf; do
  if out=$("$ridge" info "$f" 2>&1); then ok; else fail "$(basename "$f") rejected: $out"; fi
done
"$ridge" info /nonexistent/model.gguf >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] && ok || fail "missing file: exit $rc, want 2"

# Tokenize: the first gpt-2 vector ("ied 4 ½ months") with no BOS and no special parsing.
vocab=$tests/data/refdata/vocab/ggml-vocab-gpt-2.gguf
want=$(head -n 1 "$vocab.out" | sed 's/^ *//')
got=$("$ridge" tokenize -m "$vocab" --no-bos --no-parse-special --ids "ied 4 ½ months" 2>&1)
[ "$got" = "$want" ] && ok || fail "tokenize gpt-2: got '$got', want '$want'"
printf 'Hello world' > "${TMPDIR:-/tmp}/ridge-cli-input.txt"
got=$("$ridge" tokenize -m "$vocab" --ids -f "${TMPDIR:-/tmp}/ridge-cli-input.txt" 2>&1)
[ "$got" = "15496 995" ] && ok || fail "tokenize -f: got '$got', want '15496 995'"
if [ -f "$default" ]; then
  got=$("$ridge" tokenize -m "$default" --ids "<|im_start|>user" 2>&1)
  [ "$got" = "1 4093" ] && ok || fail "tokenize special <|im_start|>: got '$got', want '1 4093'"
  got=$("$ridge" tokenize -m "$default" --ids --no-parse-special "<|im_start|>" 2>&1)
  [ "$got" != "1" ] && ok || fail "--no-parse-special still parsed <|im_start|>"
fi
"$ridge" tokenize -m "$vocab" --bogus x >/dev/null 2>&1; rc=$?
[ $rc -eq 1 ] && ok || fail "unknown option: exit $rc, want 1"

# generation on the default model
if [ -f "$default" ]; then
  a=$("$ridge" run -m "$default" -p "The capital of France is" -n 8 --temp 0 -t 2 2>/dev/null)
  b=$("$ridge" run -m "$default" -p "The capital of France is" -n 8 --temp 0 -t 2 --attn naive --kv none 2>/dev/null)
  [ -n "$a" ] && [ "$a" = "$b" ] && ok || fail "run: greedy flash+paged '$a' != naive+no-cache '$b'"
  grep -q "Paris" <<<"$a" && ok || fail "run: 'The capital of France is' did not continue with Paris: '$a'"
  a=$("$ridge" run -m "$default" -p "Once upon a time" -n 16 --seed 7 -t 2 2>/dev/null)
  b=$("$ridge" run -m "$default" -p "Once upon a time" -n 16 --seed 7 -t 1 2>/dev/null)
  [ "$a" = "$b" ] && ok || fail "run: same seed, different text: '$a' vs '$b'"
  out=$(printf 'Give me three tips for staying healthy.\n/reset\nName a color.\nAnd another one?\n' |
        "$ridge" chat -m "$default" -n 24 --temp 0 -t 2 2>"$TMPDIR_CLI/chat.err"); rc=$?
  [ $rc -eq 0 ] && ok || fail "chat exited $rc: $(cat "$TMPDIR_CLI/chat.err")"
  turns=$(grep -c '^\[prefill' "$TMPDIR_CLI/chat.err")
  [ "$turns" -eq 3 ] && ok || fail "chat: $turns turns answered, want 3: $(cat "$TMPDIR_CLI/chat.err")"
  # the third turn prefills only its own message plus the template's markers
  third=$(grep '^\[prefill' "$TMPDIR_CLI/chat.err" | sed -n 3p | sed -E 's/^\[prefill ([0-9]+) new.*/\1/')
  [ -n "$third" ] && [ "$third" -lt 20 ] && ok || fail "chat: third turn prefilled $third tokens (KV cache not kept?)"
  [ "$(wc -l <<<"$out")" -ge 3 ] && ok || fail "chat: too little output: $out"
  "$ridge" chat -m "$default" --chat-template no-such-family </dev/null >/dev/null 2>&1; rc=$?
  [ $rc -eq 1 ] && ok || fail "chat --chat-template no-such-family: exit $rc, want 1"
  "$ridge" chat -m "$models/ref-gqa-f32.gguf" </dev/null >/dev/null 2>"$TMPDIR_CLI/chat.err"; rc=$?
  if grep -q chat_template "$models/ref-gqa-f32.gguf"; then ok
  else [ $rc -eq 2 ] && grep -q "no chat template" "$TMPDIR_CLI/chat.err" && ok ||
    fail "chat on a model without a template: exit $rc: $(cat "$TMPDIR_CLI/chat.err")"; fi
  # perplexity of the model on English prose: finite, and far better than uniform (49152)
  ppl=$("$ridge" perplexity -m "$default" -f "$repo/README.md" -c 128 -t 2 --json -q 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["perplexity"])')
  python3 -c "import sys; p=float('$ppl'); sys.exit(0 if 1 < p < 1000 else 1)" 2>/dev/null && ok ||
    fail "perplexity on README.md: '$ppl', want 1 < ppl < 1000"
  "$ridge" perplexity -m "$default" -p "one" -c 64 -q >/dev/null 2>&1; rc=$?
  [ $rc -ne 0 ] && [ $rc -lt 128 ] && ok || fail "perplexity of a 1-token text: exit $rc, want an error"
  "$ridge" run -m "$default" -p "hi" -n 4 -c 2 >/dev/null 2>&1; rc=$?
  [ $rc -ne 0 ] && [ $rc -lt 128 ] && ok || fail "run with a prompt longer than -c: exit $rc, want an error"
fi

echo "cli: $pass checks passed, $fails failed"
[ $fails -eq 0 ]
