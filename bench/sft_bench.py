"""SFT throughput: infuse's sft vs plain TRL (padded defaults) vs TRL packing=True, on the same data.

One command on any CUDA machine:

    python bench/sft_bench.py                 # full FT and LoRA, ~8 min on one H100
    python bench/sft_bench.py --methods lora  # one method
    python bench/sft_bench.py --cpu-smoke     # tiny model, a few steps: checks the three paths run (here)

Model: Qwen2.5-1.5B's body (28 layers, hidden 1536, 12 heads / 2 KV heads,
MLP 8960), random init, with the Gemma 3 tokenizer's 262k vocabulary (the
only tokenizer available offline), bf16. Data: QA-like chat samples from
../shared/data/general/ (LLaMA-Factory's alpaca demo sets), else the
examples/ corpus turned into QA. Each run is its own process (clean peak
memory), each measured after warm-up steps: tokens/s counts real tokens
(no padding), MFU = 6 * N * tokens/s / 989e12 (N = all parameters, H100/H200
bf16 dense peak), and the ratio to TRL-packed is printed per method.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PEAK = 989e12
QWEN15 = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
              num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1e6, tie_word_embeddings=True)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=4096, tie_word_embeddings=True)


def qa_rows(limit: int) -> list[dict]:
    """Chat samples of QA-like lengths: the alpaca demo sets (en + zh), else the demo corpus' paragraphs."""
    rows = []
    for name in ("alpaca_en_demo.json", "alpaca_zh_demo.json"):
        path = REPO.parent / "shared" / "data" / "general" / name
        if path.is_file():
            for r in json.loads(path.read_text(encoding="utf-8")):
                user = (r["instruction"] + ("\n" + r["input"] if r.get("input") else "")).strip()
                if user and r.get("output"):
                    rows.append([{"role": "user", "content": user}, {"role": "assistant", "content": r["output"]}])
    if not rows:  # no shared data: paragraphs of the examples as answers
        for p in sorted((REPO / "examples").rglob("*.md")):
            for para in p.read_text(encoding="utf-8").split("\n\n"):
                if len(para) > 200:
                    rows.append([{"role": "user", "content": f"Explain this part of {p.stem}."},
                                 {"role": "assistant", "content": para}])
    return [{"sample_id": f"s{i}", "messages": m, "source": "bench", "kind": "general", "doc_id": "", "chunk_id": "",
             "span_start": None, "span_end": None, "strategy": "alpaca", "lang": "", "split": "train"}
            for i, m in enumerate(rows[:limit])]


def make_model(out: Path, shape: dict) -> Path:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from infuse.operators.common.models import local_model_path
    from infuse.operators.train import templates

    tok = AutoTokenizer.from_pretrained(local_model_path())
    tok.chat_template = templates.GEMMA  # the training template, with generation markers
    cfg = Qwen2Config(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, **shape)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


# ---- the TRL runs, each in its own process -----------------------------------------------------------------------

def trl_run(spec: dict) -> dict:
    """Plain TRL on the same model and data: padded defaults, or packing=True."""
    import pyarrow.parquet as pq
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    gpu = torch.cuda.is_available()
    rows = [{"messages": r["messages"]} for r in pq.read_table(spec["data"]).to_pylist()]
    tok = AutoTokenizer.from_pretrained(spec["model"])
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.bfloat16 if gpu else torch.float32)
    times: list[tuple[float, int]] = []

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.t = 0.0
            self.tokens = 0

        def on_step_begin(self, args, state, control, **kw):
            if gpu:
                torch.cuda.synchronize()
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if gpu:
                torch.cuda.synchronize()
            times.append((time.perf_counter() - self.t, trainer._total_train_tokens))

    args = SFTConfig(output_dir=spec["out"], max_steps=spec["steps"], learning_rate=spec["lr"], report_to="none",
                     save_strategy="no", logging_steps=1, disable_tqdm=True, use_cpu=not gpu, bf16=gpu,
                     max_length=spec["max_length"], per_device_train_batch_size=spec["batch"],
                     packing=spec["packing"], assistant_only_loss=True, seed=0)
    peft = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear") if spec["method"] == "lora" else None
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         peft_config=peft, callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    return _steady(times, spec["warmup"], torch.cuda.max_memory_allocated() if gpu else None)


def _steady(times: list[tuple[float, int]], warmup: int, peak: int | None) -> dict:
    """tokens/s over the steps after warm-up (tokens: the trainer's cumulative real-token count)."""
    tokens = [b - a for (_, a), (_, b) in zip([(0, 0)] + times[:-1], times)]
    dt = [t for t, _ in times]
    keep = slice(min(warmup, len(times) - 1), None)
    tps = sum(tokens[keep]) / sum(dt[keep])
    return {"tokens_per_s": tps, "peak_memory_gb": peak / 2**30 if peak else None, "steps": len(times)}


def run_trl(model: Path, data: str, method: str, packing: bool, a: argparse.Namespace, work: Path) -> dict:
    spec = {"model": str(model), "data": data, "method": method, "packing": packing, "steps": a.steps,
            "warmup": a.warmup, "lr": 1e-5 if method == "full" else 1e-4, "max_length": a.max_length,
            "batch": a.trl_batch, "out": str(work / f"trl-{method}-{packing}")}
    out = work / f"trl-{method}-{int(packing)}.json"
    subprocess.run([sys.executable, __file__, "--trl-run", json.dumps(spec), "--result", str(out)], check=True)
    return json.loads(out.read_text())


def run_infuse(model: Path, data: str, method: str, a: argparse.Namespace, work: Path) -> dict:
    from infuse.operators.train.config import Job, LaunchOptions, LoraOptions, TrainOptions
    from infuse.operators.train.launch import run_job

    job = Job(kind="sft", base=str(model), output_dir=str(work / f"infuse-{method}"), data={"train": data},
              method=method, lora=LoraOptions(r=16, alpha=32, dropout=0.0), model={"dtype": "auto", "attn": "auto"},
              train=TrainOptions(learning_rate=1e-5 if method == "full" else 1e-4, max_steps=a.steps,
                                 batch_size=a.rows, max_length=a.max_length, warmup_ratio=0.0,
                                 save_steps=10 * a.steps, logging_steps=1))
    res = run_job(job, LaunchOptions(num_processes=1), on_log=lambda line: print("   ", line) if a.verbose else None)
    rates = res.get("step_rates", [])[a.warmup:]  # per step, after warm-up
    m = res["metrics"]
    return {"tokens_per_s": statistics.median(rates) if rates else m["tokens_per_s"], "peak_memory_gb": m.get(
        "peak_memory_gb") if m.get("device") == "cuda" else None, "steps": res["total_steps"],
        "attn": m.get("attn"), "params": m["params"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny model, a few steps (no GPU needed)")
    ap.add_argument("--methods", default="full,lora")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=8, help="steps left out of the figures")
    ap.add_argument("--max-length", type=int, default=4096, help="tokens per packed row (infuse, TRL packed)")
    ap.add_argument("--rows", type=int, default=4, help="infuse: packed rows per step")
    ap.add_argument("--trl-batch", type=int, default=8, help="TRL: samples (padded) or packed rows per step")
    ap.add_argument("--samples", type=int, default=4000)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--trl-run", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.trl_run:
        Path(a.result).write_text(json.dumps(trl_run(json.loads(a.trl_run))))
        return
    if a.cpu_smoke:
        a.steps, a.warmup, a.max_length, a.rows, a.trl_batch, a.samples = 4, 1, 128, 2, 4, 16
    import pyarrow as pa
    import pyarrow.parquet as pq

    from infuse.operators.common.dataset import SFT_SCHEMA
    from infuse.operators.train.devices import gpu_names

    gpus = gpu_names()
    if not gpus and not a.cpu_smoke:
        raise SystemExit("no CUDA GPU here: run with --cpu-smoke, or on a GPU machine")
    work = Path(tempfile.mkdtemp(prefix="sft-bench-"))
    data = str(work / "train.parquet")
    rows = qa_rows(a.samples)
    pq.write_table(pa.Table.from_pylist(rows, schema=SFT_SCHEMA), data)
    t0 = time.time()
    model = make_model(work / "model", TINY if a.cpu_smoke else QWEN15)
    machine = gpus[0] if gpus else f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    print(f"machine: {machine}; {len(rows)} samples; model {'tiny' if a.cpu_smoke else 'Qwen2.5-1.5B-shaped'} "
          f"(made in {time.time() - t0:.0f} s)\n")
    table = []
    for method in a.methods.split(","):
        runs = {"infuse sft": lambda: run_infuse(model, data, method, a, work),
                "TRL padded (defaults)": lambda: run_trl(model, data, method, False, a, work),
                "TRL packing=True": lambda: run_trl(model, data, method, True, a, work)}
        res = {}
        for name, fn in runs.items():
            t1 = time.time()
            res[name] = fn()
            res[name]["wall_s"] = time.time() - t1
            print(f"  {method:5s} {name:22s} {res[name]['tokens_per_s']:10.0f} tokens/s  ({res[name]['wall_s']:.0f} s)")
        n = res["infuse sft"]["params"]
        base = res["TRL packing=True"]["tokens_per_s"]
        for name, r in res.items():
            mfu = 6 * n * r["tokens_per_s"] / PEAK if gpus else None
            table.append({"method": method, "run": name, "tokens_per_s": round(r["tokens_per_s"], 1),
                          "mfu": round(mfu, 4) if mfu is not None else None, "peak_memory_gb": r["peak_memory_gb"],
                          "vs_trl_packed": round(r["tokens_per_s"] / base, 2)})
    print(f"\nN = {n / 1e9:.3f} B parameters; MFU = 6 N tokens/s / 989 TFLOP/s" + ("" if gpus else " (not on CPU)"))
    print("| method | run | tokens/s | MFU | peak memory | vs TRL packed |\n|---|---|---|---|---|---|")
    for r in table:
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        mem = f"{r['peak_memory_gb']:.1f} GB" if r["peak_memory_gb"] else "-"
        print(f"| {r['method']} | {r['run']} | {r['tokens_per_s']:.0f} | {mfu} | {mem} | {r['vs_trl_packed']:.2f}x |")
    print(f"\ntotal {time.time() - t0:.0f} s; work dir {work}")


if __name__ == "__main__":
    main()
