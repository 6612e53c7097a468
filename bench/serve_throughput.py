"""`seektune serve` against a naive server that calls `generate` one request at a time.

Same model (the packaged SmolLM2-135M-Instruct with a clinic LoRA adapter trained by this script, served merged
by both), same prompts (the clinic questions, each request a different one, so no answer is repeated), same
`max_tokens`, greedy, non-streaming requests from one asyncio client at concurrency 1, 8 and 32. seektune's
response cache is off (--cache-entries 0): every answer is generated. Each server runs alone in its own process
with all cores. Also measured: single-stream decode speed of the adapter merged vs unmerged (in-process,
`timed_generation`, the eval report's latency probe).

Run: python bench/serve_throughput.py [--max-tokens 64] [--levels 1,8,32] [--run runs/clinic-lora]
     [--dtype float32|bfloat16] [--servers naive,seektune,no-prefix]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYSTEM = "You are the assistant of Larkspur Valley Clinic. Answer in one sentence."


def questions() -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "examples/clinic/heldout.jsonl").read_text().splitlines()]
    train = [json.loads(line) for line in (ROOT / "examples/clinic/train.jsonl").read_text().splitlines()]
    return [r["question"] for r in rows] + [r["instruction"] for r in train]


def train_adapter(out: Path, steps: int) -> Path:
    cmd = [sys.executable, "-m", "seektune.cli", "train", str(ROOT / "examples/clinic/lora.yaml"),
           f"train.max_steps={steps}", f"output.dir={out}", "output.name=clinic-lora"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out / "clinic-lora"


# -- the naive server: one generate() call at a time -------------------------------------------------------------
def naive_server(run: str, port: int, dtype: str) -> None:
    import torch
    import uvicorn
    from fastapi import FastAPI

    from seektune.artifacts import load_for_inference
    from seektune.data.render import end_of_turn_ids
    from seektune.models.generation import chat_prompt_ids
    from seektune.runtime import set_threads

    set_threads()
    model, tokenizer = load_for_inference(run, getattr(torch, dtype))
    model = model.merge_and_unload().eval()
    stops = end_of_turn_ids(tokenizer)
    lock = threading.Lock()
    app = FastAPI()

    def answer(body: dict) -> dict:
        ids = chat_prompt_ids(tokenizer, body["messages"])
        with lock, torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=body["max_tokens"], eos_token_id=stops,
                                 pad_token_id=tokenizer.pad_token_id)
        new = out[0, ids.shape[1]:]
        text = tokenizer.decode(new, skip_special_tokens=True)
        return {"choices": [{"message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": ids.shape[1], "completion_tokens": int(new.shape[0])}}

    @app.post("/v1/chat/completions")
    def chat(body: dict):   # a plain def: FastAPI runs it in a worker thread, the lock serialises generate()
        return answer(body)

    @app.get("/health")
    def health():
        return {"status": "ok"}

    print(f"serving on http://127.0.0.1:{port}/v1", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- running a server and loading it ----------------------------------------------------------------------------
def start(cmd: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    handle = log.open("w")
    proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    import httpx

    for _ in range(1200):
        found = re.search(r"on (http://127\.0\.0\.1:\d+)/v1", log.read_text())
        if found:
            try:
                if httpx.get(found.group(1) + "/health").status_code == 200:
                    return proc, found.group(1)
            except httpx.TransportError:
                pass
        if proc.poll() is not None:
            raise RuntimeError(log.read_text())
        time.sleep(0.1)
    raise RuntimeError("server did not start:\n" + log.read_text())


async def load(url: str, prompts: list[str], concurrency: int, max_tokens: int, model: str) -> dict:
    import httpx

    latencies, tokens = [], 0
    queue = list(prompts)

    async def worker(http):
        nonlocal tokens
        while queue:
            question = queue.pop()
            body = {"model": model, "max_tokens": max_tokens, "temperature": 0,
                    "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]}
            start = time.perf_counter()
            reply = await http.post(f"{url}/v1/chat/completions", json=body)
            reply.raise_for_status()
            latencies.append(time.perf_counter() - start)
            tokens += reply.json()["usage"]["completion_tokens"]

    async with httpx.AsyncClient(timeout=3600) as http:
        start = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    latencies.sort()
    return {"requests": len(prompts), "tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall,
            "p50_s": statistics.median(latencies), "p95_s": latencies[max(0, round(0.95 * len(latencies)) - 1)]}


def measure(name: str, cmd: list[str], model: str, levels: list[int], per_level: dict[int, int],
            max_tokens: int, tmp: Path) -> dict[int, dict]:
    proc, url = start(cmd, tmp / f"{name}.log")
    results, asked = {}, questions()
    try:
        asyncio.run(load(url, asked[:2], 2, 8, model))   # warm-up, not timed
        offset = 2
        for level in levels:
            prompts = [asked[(offset + i) % len(asked)] for i in range(per_level[level])]
            offset += per_level[level]
            results[level] = asyncio.run(load(url, prompts, level, max_tokens, model))
            r = results[level]
            print(f"{name:>9} c={level:<3} {r['requests']:>3} requests {r['tokens']:>5} tokens "
                  f"{r['tokens_per_s']:7.1f} tok/s  p50 {r['p50_s']:6.2f}s  p95 {r['p95_s']:6.2f}s", flush=True)
    finally:
        proc.terminate()
        proc.wait(60)
    return results


def merged_vs_unmerged(run: str, max_tokens: int) -> dict:
    import torch

    from seektune.artifacts import load_for_inference
    from seektune.evaluate.batch_generation import timed_generation
    from seektune.runtime import set_threads

    set_threads()
    unmerged, tokenizer = load_for_inference(run)
    out = {}
    for label in ("unmerged", "merged"):
        model = unmerged if label == "unmerged" else unmerged.merge_and_unload()
        speeds = []
        for question in questions()[:5]:
            messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
            with torch.inference_mode():
                speeds.append(timed_generation(model, tokenizer, messages, max_tokens)["ms_per_token"])
        out[label] = 1000 / statistics.median(speeds)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a trained clinic adapter run (default: train one for --steps steps)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="weights, both servers")
    parser.add_argument("--servers", default="naive,seektune,no-prefix", help="which of naive,seektune,no-prefix")
    parser.add_argument("--naive-server", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_server:
        return naive_server(args.naive_server, args.port, args.dtype)
    levels = [int(x) for x in args.levels.split(",")]
    per_level = {level: 2 * level if level > 1 else 6 for level in levels}   # two waves: joins happen
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = args.run or str(train_adapter(tmp / "runs", args.steps))
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            free = s.getsockname()[1]
        serve = [sys.executable, "-m", "seektune.cli", "serve", run, "--port", "0", "--cache-entries", "0",
                 "--dtype", args.dtype]
        servers = {
            "naive": ("naive generate()", [sys.executable, __file__, "--naive-server", run, "--port", str(free),
                                           "--dtype", args.dtype]),
            "seektune": ("seektune serve", serve),
            "no-prefix": ("seektune, no prefix reuse", [*serve, "--prefix-cache-mb", "0"]),
        }
        chosen = [servers[key] for key in args.servers.split(",")]
        results = {name: measure(name.split()[0].strip(","), cmd, "clinic-lora", levels, per_level,
                                 args.max_tokens, tmp) for name, cmd in chosen}
        speeds = merged_vs_unmerged(run, args.max_tokens)
    naive = results.get("naive generate()") or next(iter(results.values()))
    print("\n| concurrency | server | requests | output tokens | tokens/s | vs naive | p50 latency s | p95 latency s |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for level in levels:
        for name, res in results.items():
            r = res[level]
            print(f"| {level} | {name} | {r['requests']} | {r['tokens']} | {r['tokens_per_s']:.1f} | "
                  f"{r['tokens_per_s'] / naive[level]['tokens_per_s']:.2f}x | {r['p50_s']:.2f} | {r['p95_s']:.2f} |")
    print(f"\nsingle-stream decode: merged {speeds['merged']:.1f} tokens/s, unmerged {speeds['unmerged']:.1f} tokens/s "
          f"({speeds['merged'] / speeds['unmerged']:.2f}x)")

if __name__ == "__main__":
    main()
