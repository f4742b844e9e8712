# tests/gpu/models.sh — sourced by run.sh and ab.sh (with B set to a CUDA build):
# the random-weight benchmark models, named SHAPE:TYPE[:LAYERS] (fewer layers keep
# the 8B shape's matrices but cut synth time and disk), made on the GPU host
# itself with ridge synth into build/gpu-models.

# use_model SPEC: sets shape, type, layers and f (the file), making f unless it
# exists; false (with a line saying so) if ridge synth fails.
use_model() {
  IFS=: read -r shape type layers <<<"$1"
  f=build/gpu-models/$shape-$type${layers:+-${layers}l}.gguf
  mkdir -p build/gpu-models
  [ -s "$f" ] || "$B/ridge" synth --shape "$shape" --type "$type" ${layers:+--layers $layers} -o "$f" >/dev/null 2>&1 ||
    { echo "synth $1 failed"; return 1; }
}
