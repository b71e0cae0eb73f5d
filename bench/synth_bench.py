"""Synthesis-call throughput benchmark.

CPU (default): the openai backend against a local `transformers serve` of the
packaged Gemma 3 270M, at concurrency 1 vs 16 on the same prompts. Shows
whether concurrent requests buy anything from that server (with and without
its --continuous-batching flag: `--cb`).

GPU (`--gpu`): our vllm backend vs vLLM's own offline `LLM.generate` on the
same prompts and the same LLM instance; output tokens/s and their ratio
(target >= 0.8).

    python bench/synth_bench.py                    # CPU
    python bench/synth_bench.py --cb               # CPU, server with continuous batching
    python bench/synth_bench.py --gpu --model PATH # any CUDA machine with vllm
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from infuse.operators.llm import ChatRequest, make_backend  # noqa: E402

TOPICS = [
    "the refund policy for enterprise customers",
    "how to rotate the database credentials",
    "the quarterly revenue report",
    "onboarding steps for a new engineer",
    "the incident on the payment gateway",
    "data retention rules for logs",
    "the API rate limits",
    "holiday leave approval",
]


def make_requests(n: int, max_tokens: int) -> list[ChatRequest]:
    reqs = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        reqs.append(
            ChatRequest(
                id=f"b{i}",
                messages=[
                    {"role": "system", "content": "You write training questions from company documents."},
                    {"role": "user", "content": f"Document {i}: notes about {topic}. Write one question about it."},
                ],
                max_tokens=max_tokens,
                temperature=0.0,
            )
        )
    return reqs


def summarize(label: str, results: list, wall: float) -> dict:
    ok = [r for r in results if r.ok]
    toks = sum(r.usage.get("completion_tokens", 0) for r in ok)
    row = {
        "label": label,
        "n": len(results),
        "ok": len(ok),
        "wall_s": wall,
        "req_s": len(ok) / wall,
        "out_tok_s": toks / wall,
    }
    print(
        f"{label:<28} n={row['n']:<4} ok={row['ok']:<4} wall={wall:7.2f}s "
        f"req/s={row['req_s']:7.3f} out_tok/s={row['out_tok_s']:9.1f}",
        flush=True,
    )
    return row


def cpu_bench(args: argparse.Namespace) -> list[str]:
    from infuse.operators.llm.local_server import LocalServer

    requests = make_requests(args.n, args.max_tokens)
    cb = "on" if args.cb else "off"
    with LocalServer(args.model, device="cpu", continuous_batching=args.cb, log_path=args.server_log) as srv:
        rows = []
        for conc in (1, 16):
            backend = make_backend(
                {"backend": "openai", "model": srv.model, "base_url": srv.base_url, "concurrency": conc, "timeout_s": 600}
            )
            backend.generate(requests[:1])  # warm up
            start = time.perf_counter()
            results = backend.generate(requests)
            rows.append(summarize(f"openai c={conc} (cb {cb})", results, time.perf_counter() - start))
    ratio = rows[1]["req_s"] / rows[0]["req_s"] if rows[0]["req_s"] else float("nan")
    print(f"concurrency 16 / 1 throughput ratio: {ratio:.2f}x")
    machine = f"{platform.machine()} {os.cpu_count()} cpu"
    return [
        f"| synth openai->transformers serve (cb {cb}) | {machine} | N={args.n}, max_tokens={args.max_tokens} "
        f"| c=1: {rows[0]['req_s']:.2f} req/s | c=16: {rows[1]['req_s']:.2f} req/s | {ratio:.2f}x |"
    ]


def gpu_bench(args: argparse.Namespace) -> list[str]:
    import torch
    import vllm

    from infuse.operators.llm.vllm_backend import VLLMBackend

    backend = make_backend(
        {
            "backend": "vllm",
            "model": args.model,
            "max_model_len": args.max_model_len,
            "gpu_memory_utilization": args.gpu_mem,
            "dtype": args.dtype,
        }
    )
    assert isinstance(backend, VLLMBackend)
    llm = backend.llm
    requests = make_requests(args.n, args.max_tokens)
    tok = llm.get_tokenizer()
    prompts = [tok.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True) for r in requests]
    params = vllm.SamplingParams(max_tokens=args.max_tokens, temperature=0.0)

    def direct() -> tuple[int, float]:
        start = time.perf_counter()
        outs = llm.generate(prompts, params, use_tqdm=False)
        return sum(len(o.outputs[0].token_ids) for o in outs), time.perf_counter() - start

    def ours() -> tuple[int, float]:
        start = time.perf_counter()
        results = backend.generate(requests)
        wall = time.perf_counter() - start
        assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
        return sum(r.usage["completion_tokens"] for r in results), wall

    direct(), ours()  # warm up (compilation, CUDA graphs)
    best = {"vllm LLM.generate": 0.0, "infuse vllm backend": 0.0}
    for _ in range(args.repeats):
        for label, fn in (("vllm LLM.generate", direct), ("infuse vllm backend", ours)):
            toks, wall = fn()
            best[label] = max(best[label], toks / wall)
            print(f"{label:<22} out_tokens={toks:<7} wall={wall:6.2f}s out_tok/s={toks / wall:10.1f}", flush=True)
    ratio = best["infuse vllm backend"] / best["vllm LLM.generate"]
    print(f"best tok/s: direct {best['vllm LLM.generate']:.1f}, backend {best['infuse vllm backend']:.1f}; ratio {ratio:.3f}")
    gpu = torch.cuda.get_device_name(0)
    return [
        f"| synth vllm backend vs LLM.generate | {gpu} | N={args.n}, max_tokens={args.max_tokens}, vllm {vllm.__version__} "
        f"| direct: {best['vllm LLM.generate']:.0f} tok/s | backend: {best['infuse vllm backend']:.0f} tok/s | {ratio:.2f} |"
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", action="store_true", help="vllm backend vs vllm.LLM.generate")
    ap.add_argument("--model", default=None, help="local model dir (default: converted Gemma 3 270M)")
    ap.add_argument("--n", type=int, default=None, help="prompts (default 32 CPU, 512 GPU)")
    ap.add_argument("--max-tokens", type=int, default=None, help="default 32 CPU, 256 GPU")
    ap.add_argument("--cb", action="store_true", help="CPU: start transformers serve with --continuous-batching")
    ap.add_argument("--server-log", default=None, help="CPU: write the server's output here")
    ap.add_argument("--max-model-len", type=int, default=4096)
    ap.add_argument("--gpu-mem", type=float, default=0.8)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None, help="append the markdown row(s) to this file")
    args = ap.parse_args()
    if args.model is None:
        from infuse.operators.common.models import local_model_path

        args.model = str(local_model_path())
    args.n = args.n or (512 if args.gpu else 32)
    args.max_tokens = args.max_tokens or (256 if args.gpu else 32)
    rows = gpu_bench(args) if args.gpu else cpu_bench(args)
    header = "| benchmark | machine | setup | baseline | ours | ratio |\n|---|---|---|---|---|---|"
    print("\nsuggested markdown:\n" + header + "\n" + "\n".join(rows))
    if args.out:
        with open(args.out, "a") as fh:
            fh.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
