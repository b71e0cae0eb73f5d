"""DPO throughput: infuse's dpo vs plain TRL DPOTrainer, on the same model, pairs and batch, in one run.

One command on any CUDA machine:

    python bench/dpo_bench.py               # LoRA DPO on a Qwen2.5-1.5B-shaped model, ~5 min on one H100
    python bench/dpo_bench.py --cpu-smoke   # tiny model, a few steps: checks both paths run (here)

Model: Qwen2.5-1.5B's body (28 layers, hidden 1536, 12 heads / 2 KV heads,
MLP 8960), random init, with the Gemma 3 tokenizer's 262k vocabulary (the only
tokenizer available offline), bf16; it stands in for the SFT model (a full
layout with its card). Pairs: LLaMA-Factory's dpo_en/zh demo sets from
../shared/data/general/, else pairs made from the examples/ corpus. Both runs
train a LoRA (r 16, all linear layers) with the reference = adapter disabled,
sigmoid loss, the same batch, max_length and steps, each in its own process.
tokens/s is trl's own count (prompt + chosen + rejected tokens, no padding)
over the steps after warm-up; the ratio infuse / TRL is printed.
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
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from sft_bench import QWEN15, TINY, make_model  # noqa: E402  the same model as the SFT bench


def pair_rows(limit: int) -> list[dict]:
    """PAIR_SCHEMA rows: the shared DPO demo sets, else answers from the examples against a wrong one."""
    from infuse.operators.preference import read_user_pairs

    files = [str(REPO.parent / "shared" / "data" / "general" / n) for n in ("dpo_en_demo.json", "dpo_zh_demo.json")]
    pairs, _ = read_user_pairs([f for f in files if Path(f).is_file()])
    if not pairs:
        for i, p in enumerate(sorted((REPO / "examples").rglob("*.md"))):
            paras = [x for x in p.read_text(encoding="utf-8").split("\n\n") if len(x) > 200]
            for j, para in enumerate(paras):
                pairs.append({"pair_id": f"ex{i}-{j}", "prompt": [{"role": "user", "content": f"Explain part {j} of "
                                                                  f"{p.stem}."}], "chosen": para,
                              "rejected": paras[(j + 1) % len(paras)], "origin": "bench", "rejected_from": "bench",
                              "sample_id": "", "chunk_id": "", "lang": "", "rejected_grounding": None,
                              "similarity": None})
    return pairs[:limit]


def sft_card(model: Path) -> None:
    """Make the model dir look like a full SFT result (what infuse's dpo starts from)."""
    from transformers import AutoConfig, AutoTokenizer

    from infuse.operators.train import templates
    from infuse.operators.train.card import write_card

    tok = AutoTokenizer.from_pretrained(model)
    tpl = templates.resolve(tok, AutoConfig.from_pretrained(model).model_type, None)
    templates.install(tok, tpl)
    tok.save_pretrained(model)
    write_card(model, {"kind": "sft", "method": "full", "layout": "full", "template": tpl.to_card(), "base": {}})


def trl_run(spec: dict) -> dict:
    """Plain TRL: DPOTrainer on the model with a LoRA peft_config, its defaults otherwise."""
    import pyarrow.parquet as pq
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    gpu = torch.cuda.is_available()
    rows = [{"prompt": r["prompt"], "chosen": [{"role": "assistant", "content": r["chosen"]}],
             "rejected": [{"role": "assistant", "content": r["rejected"]}]}
            for r in pq.read_table(spec["data"]).to_pylist()]
    tok = AutoTokenizer.from_pretrained(spec["model"])
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.bfloat16 if gpu else torch.float32)
    times: list[tuple[float, int]] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if gpu:
                torch.cuda.synchronize()
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if gpu:
                torch.cuda.synchronize()
            times.append((time.perf_counter() - self.t, trainer._total_train_tokens))

    args = DPOConfig(output_dir=spec["out"], max_steps=spec["steps"], learning_rate=5e-5, report_to="none",
                     save_strategy="no", logging_steps=1, disable_tqdm=True, use_cpu=not gpu, bf16=gpu,
                     max_length=spec["max_length"], per_device_train_batch_size=spec["batch"], seed=0, beta=0.1)
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"),
                         callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    tokens = [b - a for (_, a), (_, b) in zip([(0, 0)] + times[:-1], times)]
    keep = slice(min(spec["warmup"], len(times) - 1), None)
    return {"tokens_per_s": sum(tokens[keep]) / sum(t for t, _ in times[keep]),
            "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if gpu else None}


def run_trl(model: Path, data: str, a: argparse.Namespace, work: Path) -> dict:
    spec = {"model": str(model), "data": data, "steps": a.steps, "warmup": a.warmup, "max_length": a.max_length,
            "batch": a.batch, "out": str(work / "trl")}
    out = work / "trl.json"
    subprocess.run([sys.executable, __file__, "--trl-run", json.dumps(spec), "--result", str(out)], check=True)
    return json.loads(out.read_text())


def run_infuse(model: Path, data: str, a: argparse.Namespace, work: Path) -> dict:
    from infuse.operators.train.config import Job, LaunchOptions, LoraOptions, TrainOptions
    from infuse.operators.train.launch import run_job

    job = Job(kind="dpo", base=str(model), output_dir=str(work / "infuse"), data={"pairs": data}, method="lora",
              lora=LoraOptions(r=16, alpha=32, dropout=0.0), model={"dtype": "auto", "attn": "auto"},
              extra={"sft": str(model), "beta": 0.1, "loss_type": "sigmoid", "ref_check": 0},
              train=TrainOptions(learning_rate=5e-5, max_steps=a.steps, batch_size=a.batch, max_length=a.max_length,
                                 warmup_ratio=0.0, lr_scheduler="constant", save_steps=10 * a.steps,
                                 logging_steps=1, packing=False))
    res = run_job(job, LaunchOptions(num_processes=1), on_log=lambda line: print("   ", line) if a.verbose else None)
    rates = res.get("step_rates", [])[a.warmup:]
    m = res["metrics"]
    return {"tokens_per_s": statistics.median(rates) if rates else m["tokens_per_s"],
            "peak_memory_gb": m.get("peak_memory_gb") if m.get("device") == "cuda" else None, "attn": m.get("attn"),
            "params": m["params"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny model, a few steps (no GPU needed)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=8, help="steps left out of the figures")
    ap.add_argument("--max-length", type=int, default=1024, help="tokens of prompt + reply")
    ap.add_argument("--batch", type=int, default=8, help="pairs per step")
    ap.add_argument("--pairs", type=int, default=600)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--trl-run", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.trl_run:
        Path(a.result).write_text(json.dumps(trl_run(json.loads(a.trl_run))))
        return
    if a.cpu_smoke:
        a.steps, a.warmup, a.max_length, a.batch, a.pairs = 4, 1, 128, 2, 16
    import pyarrow as pa
    import pyarrow.parquet as pq

    from infuse.operators.preference import PAIR_SCHEMA
    from infuse.operators.train.devices import gpu_names

    gpus = gpu_names()
    if not gpus and not a.cpu_smoke:
        raise SystemExit("no CUDA GPU here: run with --cpu-smoke, or on a GPU machine")
    work = Path(tempfile.mkdtemp(prefix="dpo-bench-"))
    data = str(work / "pairs.parquet")
    rows = pair_rows(a.pairs)
    pq.write_table(pa.Table.from_pylist(rows, schema=PAIR_SCHEMA), data)
    t0 = time.time()
    model = make_model(work / "model", TINY if a.cpu_smoke else QWEN15)
    sft_card(model)
    machine = gpus[0] if gpus else f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    print(f"machine: {machine}; {len(rows)} pairs; model {'tiny' if a.cpu_smoke else 'Qwen2.5-1.5B-shaped'}\n")
    res = {}
    for name, fn in {"infuse dpo": lambda: run_infuse(model, data, a, work),
                     "TRL DPOTrainer": lambda: run_trl(model, data, a, work)}.items():
        t1 = time.time()
        res[name] = fn()
        res[name]["wall_s"] = time.time() - t1
        print(f"  {name:16s} {res[name]['tokens_per_s']:10.0f} tokens/s  ({res[name]['wall_s']:.0f} s)")
    base = res["TRL DPOTrainer"]["tokens_per_s"]
    print(f"\nN = {res['infuse dpo']['params'] / 1e9:.3f} B parameters; attention {res['infuse dpo']['attn']}")
    print("| run | tokens/s | peak memory | vs TRL |\n|---|---|---|---|")
    for name, r in res.items():
        mem = f"{r['peak_memory_gb']:.1f} GB" if r["peak_memory_gb"] else "-"
        print(f"| {name} | {r['tokens_per_s']:.0f} | {mem} | {r['tokens_per_s'] / base:.2f}x |")
    print(f"\ntotal {time.time() - t0:.0f} s; work dir {work}")


if __name__ == "__main__":
    main()
