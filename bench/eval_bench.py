"""Evaluate's answering throughput: answers/s of `operators.evaluate.answer.answer`, the path every model row
of the evaluate step takes, against a baseline measured in the same run.

CPU (default): the transformers backend with batch_size 8 vs batch_size 1 (one request at a time) on the packaged
Gemma 3 270M, greedy, the same questions. `--cpu-smoke`: 8 questions, 16 tokens (checks the path, in seconds).
GPU (`--gpu`): the vllm backend (one process per model, as the step runs it) vs transformers batch 8 on CUDA.

    python bench/eval_bench.py --cpu-smoke
    python bench/eval_bench.py                     # CPU, 32 questions, 48 tokens
    python bench/eval_bench.py --gpu --model PATH  # any CUDA machine with vllm
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

from infuse.operators.evaluate import answer as ans  # noqa: E402
from infuse.operators.evaluate.questions import Item  # noqa: E402
from infuse.operators.llm import LLMConfig  # noqa: E402

QUESTIONS = ["How do I open a LotusDB database?", "What is the default page size of LotusDB?",
             "How are keys stored in LotusDB?", "How do I back up a LotusDB file?",
             "莲花数据库如何打开一个数据库？", "莲花数据库的默认页大小是多少？",
             "What does the compaction thread do?", "How do I enable write-ahead logging?"]


def items(n: int) -> list[Item]:
    return [Item(item_id=f"q{i}", group="domain", question=q, reference="", lang="zh" if ord(q[0]) > 0x2e80 else "en",
                 prompt=[{"role": "user", "content": q}]) for i, q in enumerate((QUESTIONS * n)[:n])]


def timed(a: ans.Answerer, its: list[Item], cfg: LLMConfig, tokens: int, isolated: bool = False) -> tuple[float, int]:
    t0 = time.perf_counter()
    res = (ans.isolated(ans.answer, a, its, cfg, tokens) if isolated else ans.answer(a, its, cfg, tokens))
    dt = time.perf_counter() - t0
    return dt, sum(r.usage.get("completion_tokens", 0) for r in res if r.ok)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu-smoke", action="store_true")
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--model", default=None, help="a model dir with a chat template (default: packaged Gemma, "
                                                   "given the gemma template)")
    ap.add_argument("-n", type=int, default=None)
    ap.add_argument("--tokens", type=int, default=None)
    a = ap.parse_args()
    n = a.n or (8 if a.cpu_smoke else 32)
    tokens = a.tokens or (16 if a.cpu_smoke else 48)
    from infuse.operators.common.models import model_dir

    path = a.model
    if path is None:
        work = Path(os.environ.get("TMPDIR", "/tmp")) / "infuse-eval-bench"
        path = str(ans.base_view(model_dir(None), work / "base", None, "gemma"))
    its = items(n)
    row = ans.Answerer("base", path)
    machine = f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus"
    if a.gpu:
        t_base, k_base = timed(row, its, LLMConfig(backend="transformers", device="cuda", batch_size=8), tokens)
        t_new, k_new = timed(row, its, LLMConfig(backend="vllm"), tokens, isolated=True)
        names = ("transformers batch 8 (cuda)", "vllm, own process")
    else:
        t_base, k_base = timed(row, its, LLMConfig(backend="transformers", device="cpu", batch_size=1), tokens)
        t_new, k_new = timed(row, its, LLMConfig(backend="transformers", device="cpu", batch_size=8), tokens)
        names = ("transformers batch 1", "transformers batch 8")
    print(f"machine: {machine}; {n} questions, max {tokens} new tokens, model {path}")
    print(f"baseline {names[0]:28s} {n / t_base:7.2f} answers/s  {k_base / t_base:8.1f} tokens/s  ({t_base:.1f} s)")
    print(f"measured {names[1]:28s} {n / t_new:7.2f} answers/s  {k_new / t_new:8.1f} tokens/s  ({t_new:.1f} s)")
    print(f"ratio: {t_base / t_new:.2f}x")


if __name__ == "__main__":
    main()
