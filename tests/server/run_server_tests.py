#!/usr/bin/env python3
"""run_server_tests.py — `ridge serve` over loopback HTTP (Python stdlib only).

Starts the server on a free port with the given model, then checks:
  * /health, /v1/models, /metrics;
  * completions and chat, non-streaming and streaming (SSE): fields, usage,
    finish reasons, streamed text == non-streamed text, stop strings, n > 1;
  * 64 concurrent greedy streams give exactly the text of the same requests run
    one at a time;
  * a client that disconnects mid-stream (and one that gives up on a non-streamed
    answer) cancels its request, and /metrics shows its KV blocks freed;
  * malformed JSON and bad parameters get 400 with an OpenAI error object,
    unknown paths 404, wrong methods 405;
  * overload: a second server with a tiny queue answers 503/429, never hangs;
  * `ridge loadgen` against the server reports its figures, without errors;
    lognormal lengths stay within their caps, bad distributions are refused;
    /metrics then has a KV waste fraction and the engine's step time;
  * the unmodified `openai` Python client (when installed: scripts/deps.sh tries
    pip) lists models, completes, chats and streams.
Usage: run_server_tests.py --ridge BUILD/ridge --model MODEL.gguf
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print(f"  FAIL: {what}", flush=True)
    return cond


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, ridge, model, extra):
        self.port = free_port()
        self.log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ridge-serve-{self.port}.log"), "w+")
        self.proc = subprocess.Popen([ridge, "serve", "-m", model, "--port", str(self.port)] + extra,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ridge serve exited with {self.proc.returncode}: {self.read_log()}")
            try:
                status, _ = self.get("/health", timeout=2)
                if status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("ridge serve did not come up: " + self.read_log())

    def read_log(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def conn(self, timeout=300):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path, timeout=60):
        c = self.conn(timeout)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body

    def post(self, path, body, timeout=300):
        c = self.conn(timeout)
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        c.request("POST", path, data, {"Content-Type": "application/json"})
        r = c.getresponse()
        raw = r.read()
        c.close()
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, raw

    def stream(self, path, body, timeout=300):
        """POST with stream: true; returns (status, [event dicts], saw_done)."""
        c = self.conn(timeout)
        c.request("POST", path, json.dumps(dict(body, stream=True)), {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            raw = r.read()
            c.close()
            return r.status, [json.loads(raw)], False
        check(r.getheader("Content-Type", "").startswith("text/event-stream"), "SSE content type")
        events, done = [], False
        for line in r:
            line = line.decode().rstrip("\r\n")
            if not line.startswith("data: "):
                continue
            payload = line[6:]
            if payload == "[DONE]":
                done = True
                break
            events.append(json.loads(payload))
        c.close()
        return 200, events, done

    def metrics(self):
        status, body = self.get("/metrics")
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def stop(self):
        self.proc.send_signal(2)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "killed"
        check(rc == 0, f"server exits cleanly on SIGINT (rc {rc}); log:\n{self.read_log()[-3000:]}")


def streamed_text(events, index=0, chat=False):
    out = []
    for e in events:
        for ch in e.get("choices", []):
            if ch["index"] != index:
                continue
            out.append(ch["delta"].get("content", "") if chat else ch.get("text", ""))
    return "".join(out)


def finish_of(events, index=0):
    reasons = [ch["finish_reason"] for e in events for ch in e.get("choices", []) if ch["index"] == index]
    return [r for r in reasons if r]


def test_basics(s, quick):
    print("basics", flush=True)
    status, body = s.get("/health")
    check(status == 200 and json.loads(body)["status"] == "ok", "/health")
    status, body = s.get("/v1/models")
    models = json.loads(body)
    check(status == 200 and models["object"] == "list" and models["data"][0]["object"] == "model", "/v1/models")
    n_tok = 6 if quick else 12
    greedy = {"prompt": "The capital of France is", "max_tokens": n_tok, "temperature": 0}
    status, r = s.post("/v1/completions", greedy)
    check(status == 200, f"completion status {status} {r}")
    check(r["object"] == "text_completion" and len(r["choices"]) == 1, "completion shape")
    text = r["choices"][0]["text"]
    check(len(text) > 0, "completion text")
    check(r["choices"][0]["finish_reason"] == "length", "max_tokens gives finish_reason length")
    u = r["usage"]
    check(u["completion_tokens"] == n_tok and u["prompt_tokens"] > 0 and
          u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], f"usage {u}")
    # streamed == non-streamed under greedy sampling
    status, events, done = s.stream("/v1/completions", greedy)
    check(status == 200 and done, "stream ends with [DONE]")
    check(streamed_text(events) == text, f"streamed text {streamed_text(events)!r} == {text!r}")
    check(finish_of(events) == ["length"], f"stream finish {finish_of(events)}")
    # a stop string cuts the text before it
    if len(text.strip()) > 3:
        stop = text.strip()[1:3]
        status, r2 = s.post("/v1/completions", dict(greedy, stop=[stop]))
        got = r2["choices"][0]["text"]
        check(status == 200 and r2["choices"][0]["finish_reason"] == "stop" and stop not in got and
              text.startswith(got), f"stop string {stop!r}: {got!r}")
    # chat, non-streaming and streaming
    chat = {"messages": [{"role": "system", "content": "You are brief."},
                         {"role": "user", "content": "What is the capital of Italy?"}],
            "max_tokens": 10 if quick else 24, "temperature": 0}
    status, r = s.post("/v1/chat/completions", chat)
    check(status == 200 and r["object"] == "chat.completion", f"chat status {status}")
    msg = r["choices"][0]["message"]
    check(msg["role"] == "assistant" and len(msg["content"]) > 0, "chat message")
    check(r["choices"][0]["finish_reason"] in ("stop", "length"), "chat finish_reason")
    status, events, done = s.stream("/v1/chat/completions", dict(chat, stream_options={"include_usage": True}))
    check(done and events[0]["object"] == "chat.completion.chunk", "chat stream")
    check(events[0]["choices"][0]["delta"].get("role") == "assistant", "first chat chunk carries the role")
    check(streamed_text(events, chat=True) == msg["content"], "chat streamed == non-streamed")
    check(events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] ==
          r["usage"]["completion_tokens"], "include_usage chunk")
    # a repeated chat prompt hits the prefix cache
    status, r3 = s.post("/v1/chat/completions", chat)
    check(r3["usage"]["prompt_tokens_details"]["cached_tokens"] >= 16, f"prefix cache hit: {r3['usage']}")
    check(r3["choices"][0]["message"]["content"] == msg["content"], "same greedy answer from cached prefix")
    # n > 1 sampled choices
    status, r = s.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 8, "n": 3,
                                           "temperature": 0.9, "seed": 7})
    check(status == 200 and sorted(c["index"] for c in r["choices"]) == [0, 1, 2], "n = 3 choices")
    check(r["usage"]["completion_tokens"] == 24, f"n = 3 usage {r['usage']}")
    # token-id prompt
    status, r = s.post("/v1/completions", {"prompt": [1, 504, 3458], "max_tokens": 3, "temperature": 0})
    check(status == 200 and r["usage"]["prompt_tokens"] == 3, f"token-id prompt {status}")


def test_concurrency(s, n_streams=64, n_prompts=16, max_tokens=12):
    print(f"{n_streams} concurrent streams", flush=True)
    topics = ["the ocean", "a robot", "winter", "coffee", "the moon", "a library", "trains", "music",
              "gardens", "mountains", "a cat", "bread", "rain", "chess", "bicycles", "the desert"]
    prompts = [f"Write one sentence about {t}." for t in topics[:n_prompts]]
    alone = []
    for p in prompts:
        status, r = s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": p}],
                                                    "max_tokens": max_tokens, "temperature": 0})
        check(status == 200, "single request")
        alone.append(r["choices"][0]["message"]["content"])
    results = [None] * n_streams

    def worker(i):
        try:
            body = {"messages": [{"role": "user", "content": prompts[i % n_prompts]}], "max_tokens": max_tokens,
                    "temperature": 0}
            status, events, done = s.stream("/v1/chat/completions", body)
            results[i] = (status, streamed_text(events, chat=True), done)
        except Exception as e:  # noqa: BLE001 - reported as a failure below
            results[i] = (0, repr(e), False)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_streams)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.time() - t0
    bad = [i for i in range(n_streams) if results[i] != (200, alone[i % n_prompts], True)]
    for i in bad[:5]:
        print(f"    stream {i}: {results[i]!r} vs alone {alone[i % n_prompts]!r}")
    check(not bad, f"{len(bad)} of {n_streams} concurrent streams differ from their single-request run")
    m = wait_idle(s, "after the concurrent streams")  # stats are published at the end of an engine step
    print(f"  {n_streams} streams in {dt:.1f} s; {int(m['ridge_engine_steps_total'])} engine steps so far")


def wait_idle(s, what, timeout=30):
    deadline = time.time() + timeout
    m = s.metrics()
    while time.time() < deadline:
        m = s.metrics()
        if (m["ridge_requests_running"] == 0 and m["ridge_requests_waiting"] == 0 and
                m["ridge_kv_blocks_used"] == m["ridge_kv_blocks_cached"]):
            return m
        time.sleep(0.1)
    check(False, f"{what}: blocks not freed: {m}")
    return m


def test_disconnect(s):
    print("disconnects", flush=True)
    before = s.metrics()["ridge_requests_cancelled_total"]
    body = json.dumps({"prompt": "Count: one, two, three,", "max_tokens": 4000, "temperature": 0,
                       "ignore_eos": True, "stream": True})
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
    got = b""
    while got.count(b"data: ") < 3:
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    m = s.metrics()
    check(m["ridge_requests_running"] == 1 and m["ridge_kv_blocks_used"] > m["ridge_kv_blocks_cached"],
          f"the stream holds blocks while running: {m}")
    sock.close()
    m = wait_idle(s, "streaming disconnect")
    check(m["ridge_requests_cancelled_total"] == before + 1, "the disconnected stream was cancelled")
    # a non-streamed request whose client gives up
    sock = socket.create_connection(("127.0.0.1", s.port))
    body = json.dumps({"prompt": "Count: one, two, three,", "max_tokens": 4000, "temperature": 0,
                       "ignore_eos": True})
    sock.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
    deadline = time.time() + 60
    while time.time() < deadline and s.metrics()["ridge_requests_running"] < 1:
        time.sleep(0.05)
    time.sleep(0.2)
    sock.close()
    m = wait_idle(s, "non-streaming disconnect")
    check(m["ridge_requests_cancelled_total"] == before + 2, "the abandoned request was cancelled")


def test_loadgen(s, ridge):
    print("ridge loadgen", flush=True)
    p = subprocess.run([ridge, "loadgen", "--url", f"http://127.0.0.1:{s.port}/v1", "--n", "6", "--rate", "20",
                        "--prompt-len", "8:24", "--output-len", "4", "--shared-prefix", "16"],
                       capture_output=True, text=True, timeout=300)
    check(p.returncode == 0 and "6 ok, 0 errors" in p.stdout, f"loadgen: rc {p.returncode} {p.stdout} {p.stderr}")
    for field in ("throughput", "TTFT (ms)", "ITL (ms)", "p99"):
        check(field in p.stdout, f"loadgen reports {field}")
    m = wait_idle(s, "after loadgen")
    check(m["ridge_prefix_cache_hit_tokens_total"] > 0, "loadgen's shared prefix hits the cache")
    # lognormal lengths: drawn within [1, MAX], the means reported
    p = subprocess.run([ridge, "loadgen", "--url", f"http://127.0.0.1:{s.port}", "--n", "4", "--prompt-len",
                        "lognormal:12:0.5:20", "--output-len", "lognormal:4:0.5:6", "--seed", "9"],
                       capture_output=True, text=True, timeout=300)
    check(p.returncode == 0 and "4 ok, 0 errors" in p.stdout, f"lognormal loadgen: rc {p.returncode} {p.stdout}")
    lengths = [ln.split() for ln in p.stdout.splitlines() if ln.startswith("lengths")]
    check(len(lengths) == 1 and 1 <= float(lengths[0][3]) <= 20 and 1 <= float(lengths[0][7]) <= 6,
          f"loadgen reports mean lengths within the caps: {lengths}")
    for bad in ("lognormal:0", "lognormal:10:9", "lognormal:50:1:20", "3:2"):
        p = subprocess.run([ridge, "loadgen", "--url", f"http://127.0.0.1:{s.port}", "--prompt-len", bad],
                           capture_output=True, text=True, timeout=60)
        check(p.returncode != 0 and "bad value" in p.stderr, f"loadgen refuses --prompt-len {bad}")
    m = wait_idle(s, "after lognormal loadgen")
    check(0 < m["ridge_kv_slot_waste_ratio"] < 1, "KV slot waste is a fraction")
    check(m["ridge_engine_step_seconds_total"] > 0, "engine step time is counted")


def test_bad_input(s):
    print("malformed input", flush=True)
    cases = [
        ("/v1/completions", b"{not json", None),
        ("/v1/completions", b"[1, 2]", None),
        ("/v1/completions", {"max_tokens": 4}, "prompt"),
        ("/v1/completions", {"prompt": "x", "temperature": 3}, "temperature"),
        ("/v1/completions", {"prompt": "x", "temperature": "hot"}, "temperature"),
        ("/v1/completions", {"prompt": "x", "max_tokens": -1}, "max_tokens"),
        ("/v1/completions", {"prompt": "x", "n": 0}, "n"),
        ("/v1/completions", {"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ("/v1/completions", {"prompt": "x", "stream": "yes"}, "stream"),
        ("/v1/completions", {"prompt": [1, -5]}, "prompt"),
        ("/v1/completions", {"prompt": [1, 99999999]}, "prompt"),
        ("/v1/completions", {"prompt": "word " * 5000}, "prompt"),
        ("/v1/chat/completions", {"messages": "hi"}, "messages"),
        ("/v1/chat/completions", {"messages": []}, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "hi"}]}, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "user"}]}, "messages"),
    ]
    for path, body, param in cases:
        status, r = s.post(path, body)
        ok = (status == 400 and isinstance(r, dict) and r["error"]["type"] == "invalid_request_error" and
              isinstance(r["error"]["message"], str) and (param is None or r["error"]["param"] == param))
        check(ok, f"{path} {str(body)[:60]}: want 400 (param {param}), got {status} {str(r)[:200]}")
    status, r = s.post("/v1/nothing", {"prompt": "x"})
    check(status == 404 and "error" in r, "unknown path is 404")
    status, body = s.get("/v1/completions")
    check(status == 405, "GET on a POST endpoint is 405")
    status, _ = s.get("/health")
    check(status == 200, "still healthy after bad input")


def test_overload(ridge, model, max_tokens):
    print("overload", flush=True)
    s = Server(ridge, model, ["--max-seqs", "1", "--max-queue", "2", "--kv-blocks", "256"])
    try:
        codes = [None] * 12

        def worker(i):
            try:
                status, r = s.post("/v1/completions", {"prompt": f"Story {i}:", "max_tokens": max_tokens,
                                                       "temperature": 0, "ignore_eos": True}, timeout=120)
                codes[i] = (status, r)
            except Exception as e:  # noqa: BLE001
                codes[i] = (0, repr(e))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        refused = [c for c in codes if c[0] in (429, 503)]
        served = [c for c in codes if c[0] == 200]
        check(len(refused) > 0, f"a full queue refuses: {[c[0] for c in codes]}")
        check(len(served) > 0 and len(refused) + len(served) == 12, f"the rest is served: {[c[0] for c in codes]}")
        check(all(isinstance(c[1], dict) and "error" in c[1] for c in refused), "refusals carry an error object")
        m = s.metrics()
        check(m["ridge_requests_rejected_total"] == len(refused), "rejections counted in /metrics")
        status, r = s.post("/v1/completions", {"prompt": "After the storm", "max_tokens": 4})
        check(status == 200, "serves again once the queue drains")
        # a second server on the same port fails with a clear message, not a hang
        p = subprocess.run([ridge, "serve", "-m", model, "--port", str(s.port), "--kv-blocks", "64"],
                           capture_output=True, text=True, timeout=120)
        check(p.returncode != 0 and "cannot listen" in p.stderr, f"port in use: rc {p.returncode} {p.stderr!r}")
    finally:
        s.stop()


def test_openai_client(s):
    try:
        import openai
    except ImportError:
        print("openai client: not installed, skipped (raw HTTP covers the API)", flush=True)
        return
    print(f"openai client {openai.__version__}", flush=True)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{s.port}/v1", api_key="none", max_retries=0)
    models = client.models.list()
    check(len(models.data) == 1 and models.data[0].object == "model", "openai: models.list")
    r = client.completions.create(model=models.data[0].id, prompt="The capital of France is", max_tokens=6,
                                  temperature=0)
    check(r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 6 and r.choices[0].text,
          f"openai: completions.create {r}")
    msgs = [{"role": "user", "content": "Name a color."}]
    r = client.chat.completions.create(model=models.data[0].id, messages=msgs, max_tokens=8, temperature=0)
    text = r.choices[0].message.content
    check(r.choices[0].message.role == "assistant" and text, f"openai: chat.completions.create {r}")
    streamed = "".join(c.choices[0].delta.content or "" for c in
                       client.chat.completions.create(model=models.data[0].id, messages=msgs, max_tokens=8,
                                                      temperature=0, stream=True) if c.choices)
    check(streamed == text, f"openai: streamed chat {streamed!r} == {text!r}")
    try:
        client.chat.completions.create(model=models.data[0].id, messages=msgs, temperature=7)
        check(False, "openai: bad temperature raises")
    except openai.BadRequestError as e:
        check(e.status_code == 400, "openai: BadRequestError")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ridge", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--streams", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="fewer tokens per request (sanitizer builds)")
    args = ap.parse_args()
    if not os.path.exists(args.model):
        print(f"model {args.model} missing (scripts/fetch-model.sh fetches it)")
        return 1
    t0 = time.time()
    s = Server(args.ridge, args.model, ["--max-seqs", "64", "--max-batch-tokens", "256", "--kv-blocks", "2048"])
    try:
        for name, fn in [("basics", lambda: test_basics(s, args.quick)),
                         ("concurrency", lambda: test_concurrency(s, n_streams=args.streams,
                                                                  n_prompts=4 if args.quick else 16,
                                                                  max_tokens=4 if args.quick else 12)),
                         ("disconnect", lambda: test_disconnect(s)),
                         ("openai client", lambda: test_openai_client(s)),
                         ("loadgen", lambda: test_loadgen(s, args.ridge)),
                         ("bad input", lambda: test_bad_input(s))]:
            t1 = time.time()
            fn()
            print(f"  ({name}: {time.time() - t1:.1f} s)", flush=True)
    finally:
        s.stop()
    t1 = time.time()
    test_overload(args.ridge, args.model, max_tokens=8 if args.quick else 24)
    print(f"  (overload: {time.time() - t1:.1f} s)", flush=True)
    print(f"server tests: {len(FAILURES)} failures in {time.time() - t0:.1f} s")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
