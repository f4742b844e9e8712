#!/usr/bin/env python3
"""compare_eval.py — ridge vs the reference outputs in tests/data/refdata/outputs.

For every MODEL.pN.json there: runs `ridge eval -m MODEL -p PROMPT --json` and checks
  * prompt_tokens identical;
  * top-20 logits after the prompt: the reference's top token is ours (unless its
    margin is below the type's noise), at least MIN_OVERLAP of the 20 ids agree, and
    each shared id's logit is within the type's tolerance;
  * greedy tokens identical at every step up to the first step whose reference
    margin is below the type's noise (after such a near-tie the runs may part);
and, where MODEL.pN.logits.f32 exists, every logit within tolerance.
Logit tolerances are relative to the reference's largest |logit| after the
prompt (its scale differs between models: ~10 to ~45) and stated per weight type
below; refdata/README.txt says why they are not zero (llama.cpp rounds
activations to f16 / quantizes them to 8 bits before the dot products, and so
does ridge, but summation order differs and a last-bit difference can flip a
rounding).
Exit status 1 on any failure, with one line per failed check.
"""
import argparse
import json
import os
import struct
import subprocess
import sys

# weight type -> (relative logit tolerance, absolute near-tie margin). The near-tie
# margins are refdata/README.txt's. Measured relative differences are printed as
# max_rel_logit_diff (and recorded in docs/BENCHMARKS.md); bounds sit ~2x above.
TOLERANCE = {
    "f32": (1e-4, 0.05), "f16": (1e-3, 0.05), "bf16": (5e-3, 0.1),
    "q8_0": (1.5e-2, 0.3), "q4_0": (1.5e-2, 0.3), "q4_1": (1.5e-2, 0.3), "q5_0": (1.5e-2, 0.3),
    "q5_1": (1.5e-2, 0.3), "q4_k_m": (1.5e-2, 0.3), "q5_k_m": (1.5e-2, 0.3), "q6_k": (1.5e-2, 0.3),
}
MIN_OVERLAP = 16


def weight_type(model_name):
    stem = model_name.rsplit(".", 1)[0]
    return stem.split("-", 2)[2]


def run_eval(ridge, model, prompt, extra):
    cmd = [ridge, "eval", "-m", model, "-p", prompt, "--json", "--top", "20", "--greedy", "32", "-t", "2"] + extra
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(cmd[:4]), out.returncode, out.stderr.strip()))
    return json.loads(out.stdout)


def logit_scale(ref):
    return max(1.0, max(abs(logit) for _, logit in ref["top20_after_prompt"]))


def compare(ref, got, tol, noise, errors, label, stats, greedy_logits=False):
    if got["prompt_tokens"] != ref["prompt_tokens"]:
        errors.append("%s: prompt tokens differ: %s vs %s" % (label, got["prompt_tokens"], ref["prompt_tokens"]))
        return
    ours = {tok: logit for tok, logit in got["top20_after_prompt"]}
    ref_top = ref["top20_after_prompt"]
    shared = [(tok, logit, ours[tok]) for tok, logit in ref_top if tok in ours]
    scale = logit_scale(ref)
    worst = max((abs(a - b) for _, a, b in shared), default=0.0) / scale
    stats["max_rel_logit_diff"] = max(stats.get("max_rel_logit_diff", 0.0), worst)
    if len(shared) < MIN_OVERLAP:
        errors.append("%s: only %d of the top-20 ids agree" % (label, len(shared)))
    if worst > tol:
        errors.append("%s: top-20 logit differs by %.2e of the logit scale %.1f > %.1e" % (label, worst, scale, tol))
    ref_margin = ref_top[0][1] - ref_top[1][1]
    if got["top20_after_prompt"][0][0] != ref_top[0][0] and ref_margin >= noise:
        errors.append("%s: top token %d, reference %d (margin %.3f)" % (label, got["top20_after_prompt"][0][0],
                                                                         ref_top[0][0], ref_margin))
    for step, (r, g) in enumerate(zip(ref["greedy"], got["greedy"])):
        if r["margin"] < noise:
            stats["near_tie_steps"] = stats.get("near_tie_steps", 0) + 1
            break
        if r["token"] != g["token"]:
            errors.append("%s: greedy step %d: token %d, reference %d (margin %.3f)" %
                          (label, step, g["token"], r["token"], r["margin"]))
            break
        stats["greedy_steps_matched"] = stats.get("greedy_steps_matched", 0) + 1
        if greedy_logits:  # the decode steps' own logits, not only their argmax
            d = abs(r["logit"] - g["logit"]) / logit_scale(ref)
            stats["max_rel_greedy_logit_diff"] = max(stats.get("max_rel_greedy_logit_diff", 0.0), d)
            if d > tol:
                errors.append("%s: greedy step %d: logit %.4f, reference %.4f (%.2e of the logit scale > %.1e)" %
                              (label, step, g["logit"], r["logit"], d, tol))
                break
        if r["piece_hex"] != g["piece_hex"]:
            errors.append("%s: greedy step %d: piece %s, reference %s" % (label, step, g["piece_hex"], r["piece_hex"]))
            break


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ridge", required=True)
    ap.add_argument("--refdata", required=True)
    ap.add_argument("--only", help="substring of the model names to run")
    ap.add_argument("--skip-missing", action="store_true",
                    help="skip (and list) reference files whose model is not present, e.g. on a GPU host that "
                         "received only some models")
    ap.add_argument("--wtype", choices=sorted(TOLERANCE),
                    help="the weight type whose tolerances apply to every model (for references whose model "
                         "name does not follow ref-ARCH-TYPE.gguf, e.g. a CPU run of the default model)")
    ap.add_argument("--tol", type=float,
                    help="the relative logit tolerance instead of the weight type's (near-tie margins unchanged)")
    ap.add_argument("--greedy-logits", action="store_true",
                    help="also hold each greedy step's chosen logit to the tolerance (references made by ridge "
                         "itself, where decode steps are what is under test)")
    ap.add_argument("extra", nargs="*", help="more ridge eval options (e.g. --attn naive)")
    args = ap.parse_args()
    outputs = os.path.join(args.refdata, "outputs")
    files = sorted(f for f in os.listdir(outputs) if f.endswith(".json"))
    if not files:
        sys.exit("no reference outputs in %s" % outputs)
    errors, report, skipped = [], {}, 0
    for f in files:
        ref = json.load(open(os.path.join(outputs, f)))
        if args.only and args.only not in ref["model"]:
            continue
        model = os.path.join(args.refdata, "models", ref["model"])
        if args.skip_missing and not os.path.exists(model):
            print("skipped (model not present): %s" % f)
            skipped += 1
            continue
        wtype = args.wtype or weight_type(ref["model"])
        tol, noise = TOLERANCE[wtype]
        tol = args.tol if args.tol is not None else tol
        label = f[:-5]
        stats = report.setdefault(ref["model"], {})
        try:
            got = run_eval(args.ridge, model, ref["prompt"], args.extra)
        except Exception as e:  # a crash or bad JSON is a failure of this case, not of the script
            errors.append("%s: %s" % (label, e))
            continue
        compare(ref, got, tol, noise, errors, label, stats, args.greedy_logits)
        raw = os.path.join(outputs, f[:-5] + ".logits.f32")
        if os.path.exists(raw):
            data = open(raw, "rb").read()
            ref_logits = struct.unpack("<%df" % (len(data) // 4), data)
            out = subprocess.run([args.ridge, "eval", "-m", model, "-p", ref["prompt"], "--json", "--top",
                                  str(len(ref_logits)), "--greedy", "0", "-t", "2"] + args.extra,
                                 capture_output=True, text=True, timeout=600)
            full = {tok: logit for tok, logit in json.loads(out.stdout)["top%d_after_prompt" % len(ref_logits)]}
            worst = max(abs(full[i] - ref_logits[i]) for i in range(len(ref_logits))) / logit_scale(ref)
            stats["all_logits_max_rel_diff"] = worst
            if worst > tol:
                errors.append("%s: all-logits max difference %.2e of the logit scale > %.1e" % (label, worst, tol))
    for model, stats in sorted(report.items()):
        print("%-24s %s" % (model, " ".join("%s=%s" % (k, ("%.4f" % v) if isinstance(v, float) else v)
                                             for k, v in sorted(stats.items()))))
    for e in errors:
        print("FAIL:", e)
    print("compare_eval: %d reference files%s, %d failures" % (len(files), " (%d skipped: model not present)" % skipped
                                                              if skipped else "", len(errors)))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
