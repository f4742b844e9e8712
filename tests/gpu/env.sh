# tests/gpu/env.sh — sourced with B set to a CUDA build (e.g. build/gpu-run):
# LD_LIBRARY_PATH for the libraries a prebuilt build carries and the CUDA
# libraries of the GPU host's toolkit or PyTorch wheels.
# libraries carried with a prebuilt build (e.g. libcjson.so.1, which the GPU image lacks)
[ -d "$B/lib" ] && export LD_LIBRARY_PATH="$PWD/$B/lib:${LD_LIBRARY_PATH:-}"
# cuBLAS / runtime libraries of the toolkit, wherever this image keeps them
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
         $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, "cu13/lib") for p in nvidia.__path__))' 2>/dev/null); do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
for lib in $(ldd "$B/ridge" | awk '/not found/ {print $1}'); do
  found=$(find / -xdev -name "$lib" 2>/dev/null | head -n 1)
  [ -n "$found" ] && export LD_LIBRARY_PATH="$(dirname "$found"):${LD_LIBRARY_PATH:-}"
done
