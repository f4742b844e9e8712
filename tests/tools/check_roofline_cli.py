#!/usr/bin/env python3
"""check_roofline_cli.py — the roofline toolkit's commands end to end:

  * `ridge roofline --quick --json` prints and saves the same well-formed JSON
    with every ceiling plausible, `--show` reads it back;
  * `ridge plan --json` gives the literature's numbers (Llama-2-7B f16 KV 524,288
    B/token; Llama-2-70B at 8K f16 2.68e9 B per sequence; H100 ridge point 295.2;
    alpha 0.8, gamma 4 -> 3.3616) and works on a model file with `--machine this`;
  * `ridge profile --compare attn=flash,naive` on a synthetic model: the JSON
    counts every op call (15 matmuls per token for 2 layers), the SVG is
    well-formed XML with one series per variant holding matmul and attention
    points of both phases, and the Chrome trace is JSON with one complete event
    per op call per variant, step spans, and both phases;
  * `ridge bench --json` keeps its fields and adds the planner's floors and the
    measured/floor ratios;
  * bad options exit 1 with a message.

usage: check_roofline_cli.py RIDGE_BINARY
"""
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

ridge = sys.argv[1]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(*args, expect=0):
    p = subprocess.run([ridge, *args], capture_output=True, text=True, timeout=300)
    check(p.returncode == expect, f"ridge {' '.join(args)} exited {p.returncode}, expected {expect}: {p.stderr[-400:]}")
    return p


with tempfile.TemporaryDirectory() as tmp:
    env_home = {"HOME": tmp, "XDG_CACHE_HOME": ""}
    os.environ.update(env_home)
    roof = os.path.join(tmp, "rf.json")

    # --- roofline
    p = run("roofline", "--quick", "--out", roof, "--json")
    printed = json.loads(p.stdout)
    with open(roof) as f:
        saved = json.load(f)
    check(printed == saved, "printed and saved roofline JSON differ")
    for kind in ("read", "write", "triad"):
        for tier in ("1t", "all"):
            v = saved["memory"][kind][tier]
            check(0.5 <= v <= 2000, f"memory {kind} {tier} = {v} GB/s not plausible")
    check(saved["f32_fma"]["all"] > 0.1, "f32 peak missing")
    check(saved["gpu"] is None, "gpu section filled without CUDA")
    check("measuring" in p.stderr, "no progress on stderr")
    p = run("roofline", "--show", "--out", roof)
    check("ridge points" in p.stdout and "h100" in p.stdout, "roofline --show lacks the table")

    # --- plan: numbers from the literature
    p = run("plan", "--shape", "llama2-7b", "--machine", "h100", "--json")
    j = json.loads(p.stdout)
    check(j["kv_bytes_per_token"] == 524288, f"llama2-7b KV {j['kv_bytes_per_token']}")
    check(abs(j["ridge_point_flop_per_byte"] - 295.2) < 0.1, f"H100 ridge {j['ridge_point_flop_per_byte']}")
    check(abs(j["spec_expected_tokens"] - 3.3616) < 1e-4, f"spec {j['spec_expected_tokens']}")
    for field in ("weight_bytes", "kv_bytes_per_sequence", "max_sequences", "decode_floor_ms", "prefill_floor_ms"):
        check(field in j and j[field] >= 0, f"plan JSON lacks {field}")
    p = run("plan", "llama2-70b", "--ctx", "8192", "--machine", "h100", "--json")
    j = json.loads(p.stdout)
    check(j["kv_bytes_per_sequence"] == 2684354560, f"llama2-70b 8K KV {j['kv_bytes_per_sequence']}")
    p = run("plan", "llama2-7b", "--machine", "h100")
    check("524,288 B = 2 (K,V) x 32 layers x 32 KV heads" in p.stdout, "plan text lacks the KV formula's inputs")

    # --- a synthetic model to profile
    model = os.path.join(tmp, "tiny.gguf")
    run("synth", "-o", model, "--shape", "tiny", "--type", "q8_0", "--tied")
    p = run("plan", "-m", model, "--machine", "this", "--roofline", roof, "--json")
    j = json.loads(p.stdout)
    # tiny, Q8_0 (34 B per 32), tied: 2 layers x (wq, wo 64x64; wk, wv 64x32 (2 KV heads of 16);
    # gate, up, down 64x128) + the 512 x 64 embedding; 5 norm vectors of 64 in f32
    tiny_weights = (2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128) + 512 * 64) // 32 * 34 + (2 * 2 + 1) * 64 * 4
    check(j["weight_bytes"] == tiny_weights, f"plan -m: weight bytes {j['weight_bytes']}, expected {tiny_weights}")
    check(j["decode_floor_ms"] > 0, "plan -m: no decode floor")

    trace, svg = os.path.join(tmp, "t.json"), os.path.join(tmp, "p.svg")
    n_prompt, n_gen = 8, 4
    p = run("profile", "-m", model, "-p", str(n_prompt), "-n", str(n_gen), "-t", "1", "--roofline", roof,
            "--trace", trace, "--svg", svg, "--compare", "attn=flash,naive", "--json")
    prof = json.loads(p.stdout)
    labels = [v["label"] for v in prof["variants"]]
    check(labels == ["attn=flash", "attn=naive"], f"profile variants {labels}")
    per_token_matmuls = 2 * 7 + 1  # tiny: 2 layers x 7 matrices + the output head
    calls_by_variant = []
    for v in prof["variants"]:
        ops = {o["op"]: o for o in v["phases"]["decode"]["ops"]}
        check(ops["matmul"]["calls"] == n_gen * per_token_matmuls, f"{v['label']}: decode matmul calls")
        check(ops["attention"]["calls"] == n_gen * 2, f"{v['label']}: decode attention calls")
        pre = {o["op"]: o for o in v["phases"]["prefill"]["ops"]}
        check(pre["matmul"]["calls"] == per_token_matmuls, f"{v['label']}: prefill is one batched step")
        for o in v["phases"]["decode"]["ops"]:
            check(o["bound"] in ("memory", "compute", "overhead"), f"bound {o['bound']}")
            check(o["seconds"] >= 0 and o["bytes"] > 0, f"{o['op']}: no bytes")
        calls_by_variant.append(sum(o["calls"] for ph in v["phases"].values() for o in ph["ops"]))
    flash_att = {o["op"]: o for o in prof["variants"][0]["phases"]["decode"]["ops"]}["attention"]
    naive_att = {o["op"]: o for o in prof["variants"][1]["phases"]["decode"]["ops"]}["attention"]
    check(flash_att["flops"] == naive_att["flops"], "flash and naive attention differ in FLOPs")
    check(naive_att["bytes"] > flash_att["bytes"], "naive attention moves no more bytes than flash")

    # SVG: well-formed, a series per variant, the points expected
    ns = "{http://www.w3.org/2000/svg}"
    root = ET.parse(svg).getroot()
    check(root.tag == ns + "svg", "SVG root is not <svg>")
    series = [g for g in root.iter(ns + "g") if g.get("class") == "series"]
    check([g.get("data-label") for g in series] == labels, "SVG series labels")
    for g in series:
        pts = {(pt.get("data-op"), pt.get("data-phase")) for pt in g.iter(ns + "g") if pt.get("class") == "point"}
        for want in (("matmul", "decode"), ("attention", "decode"), ("matmul", "prefill"), ("attention", "prefill")):
            check(want in pts, f"SVG series {g.get('data-label')} lacks {want}")
        check(("kv_store", "decode") not in pts, "an op without FLOPs was plotted on a FLOP axis")
    ceilings = [g for g in root.iter(ns + "g") if g.get("id") == "ceilings"]
    check(len(ceilings) == 1 and len(list(ceilings[0].iter(ns + "line"))) >= 2, "SVG ceilings missing")
    texts = " ".join(t.text or "" for t in root.iter(ns + "text"))
    check("memory" in texts and "f32 FMA" in texts, "SVG ceilings unlabelled")

    # trace: JSON, one X event per op call, steps, both phases
    with open(trace) as f:
        tr = json.load(f)
    ev = tr["traceEvents"]
    ops = [e for e in ev if e.get("ph") == "X" and e.get("tid") == 1]
    steps = [e for e in ev if e.get("ph") == "X" and e.get("tid") == 2]
    for pid, want in ((1, calls_by_variant[0]), (2, calls_by_variant[1])):
        got = sum(1 for e in ops if e["pid"] == pid)
        check(got == want, f"trace pid {pid}: {got} op events, profile counted {want}")
        check(sum(1 for e in steps if e["pid"] == pid) == 1 + n_gen, f"trace pid {pid}: steps")
    names = {e["name"] for e in ops}
    for n in ("attn_q", "ffn_down", "attention", "output", "kv_store"):
        check(n in names, f"trace lacks {n}")
    check({e["args"]["phase"] for e in ops} == {"prefill", "decode"}, "trace phases")
    check(all(e["dur"] >= 0 and e["ts"] >= 0 for e in ops), "negative trace times")
    # pool threads' slices: on their own tracks, each inside the op it belongs to
    slices = [e for e in ev if e.get("ph") == "X" and e.get("cat") == "slice"]
    check(len(slices) > 0, "trace: no thread slices")
    check(all(e["name"] != "region" for e in slices), "trace: a thread slice outside every op")
    check(all(e["tid"] >= 10 for e in slices), "trace: slices on the ops' track")
    check(sum(1 for e in slices if e["name"] in ("attn_q", "ffn_down")) > 0, "trace: slices not named after ops")
    pnames = {e["args"]["name"] for e in ev if e.get("ph") == "M" and e["name"] == "process_name"}
    check(pnames == set(labels), f"trace process names {pnames}")

    # --- bench: the planner's floors next to the measurement, earlier fields kept
    os.makedirs(os.path.join(tmp, ".cache", "ridge"), exist_ok=True)
    with open(roof) as src, open(os.path.join(tmp, ".cache", "ridge", "roofline.json"), "w") as dst:
        dst.write(src.read())
    p = run("bench", "-m", model, "-p", "8", "-n", "4", "-r", "1", "-t", "1", "--json")
    b = json.loads(p.stdout)
    for field in ("prefill_tok_s", "decode_tok_s", "decode_bytes_per_token", "weight_bytes", "kv_bytes_per_token",
                  "bandwidth_gb_s", "decode_roofline_fraction", "decode_floor_ms", "decode_measured_ms",
                  "decode_measured_over_floor", "prefill_floor_ms", "prefill_measured_ms", "prefill_measured_over_floor"):
        check(field in b, f"bench JSON lacks {field}")
    check(b["weight_bytes"] == tiny_weights, "bench: weight bytes differ from the planner's")
    check(b["decode_floor_ms"] > 0 and b["prefill_floor_ms"] > 0, "bench: no planner floors")
    check(abs(b["decode_measured_over_floor"] - b["decode_measured_ms"] / b["decode_floor_ms"]) < 1e-3 *
          b["decode_measured_over_floor"], "bench: ratio is not measured / floor")
    check("prefill_roofline_fraction" in b and "prefill_flops" in b, "bench JSON lacks the prefill roofline fraction")
    check(abs(b["prefill_roofline_fraction"] - b["prefill_floor_ms"] / b["prefill_measured_ms"]) < 1e-3 *
          b["prefill_roofline_fraction"] and b["prefill_flops"] > 0, "bench: prefill fraction is not floor / measured")

    # --- bad options
    run("plan", "--shape", "nope", expect=1)
    run("plan", "llama2-7b", "--alpha", "2", expect=1)
    run("plan", "llama2-7b", "--machine", "tpu", expect=1)
    run("profile", "-m", model, "--roofline", roof, "--compare", "color=red,blue", expect=1)
    run("profile", "-m", model, "--roofline", roof, "--compare", "attn=flash", expect=1)
    bad = os.path.join(tmp, "bad.json")
    with open(bad, "w") as f:
        f.write("{\"version\": 1}")
    p = run("plan", "llama2-7b", "--roofline", bad, expect=2)
    check("roofline JSON" in p.stderr, "a broken roofline file is not named")

print(f"check_roofline_cli: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
