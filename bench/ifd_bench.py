"""IFD speed and agreement: infuse's batched IFD vs a faithful per-sample reference loop.

The reference is written the way Cherry_LLM's `data_analysis.py` scores data
(and MoDS / Superfiltering copy it): one sample at a time, fp32 (the dtype
from_pretrained gives), the model built with `output_hidden_states=True`, two
forward passes with `labels` (so the model computes logits over the whole
vocabulary at every position), and the answer span in the prompt+answer text
located by re-tokenizing the text before it (`text.rfind(answer)`). The prompt
is rendered with the same chat template as infuse's, so both score the same
thing; the template writes its own BOS, so the whole text is encoded without
special tokens (Cherry's Alpaca prompt has none), while the answer alone is
encoded with them (BOS, as Cherry's `tokenizer.encode(output)` does).

infuse's side is exactly what the select step runs: `HFLossScorer` (both passes
batched, length-sorted, hidden states gathered at the answer positions before
the LM head) and `compute_ifd` (tokenize once, same answer ids in both passes).

Printed: wall time and tokens/s of each, the speedup, and the Spearman rank
correlation of the two IFDs (loss ratio and perplexity ratio), plus how
differently the two variants rank the same rows.

    python bench/ifd_bench.py                      # CPU, packaged Gemma 3 270M, 150 rows, fp32 and bf16
    python bench/ifd_bench.py --rows 100 --data ../shared/data/general/alpaca_zh_demo.json
    python bench/ifd_bench.py --gpu                # CUDA: Qwen2.5-0.5B-shaped random-init model, bf16
    python bench/ifd_bench.py --gpu --model PATH   # CUDA: a real local model dir (e.g. Qwen2.5-1.5B)
    python bench/ifd_bench.py --gpu --engine vllm  # also time the vllm prompt_logprobs engine
    python bench/ifd_bench.py --smoke [--gpu]      # a few rows on tiny settings: checks the bench runs
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "general" / "alpaca_en_demo.json"


def load_rows(path: Path, n: int) -> list[list[dict[str, str]]]:
    """Alpaca rows as chat conversations: user = instruction (+ input), assistant = output."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for r in rows:
        q = r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else "")
        if q.strip() and r.get("output", "").strip():
            out.append([{"role": "user", "content": q}, {"role": "assistant", "content": r["output"]}])
        if len(out) == n:
            break
    return out


# ---- the reference: one sample at a time, as the paper's code does ------------------------------------------


def reference_ifd(model, tok, template: str, conversations, device: str, max_length: int = 4096):
    """(s(A|Q), s(A), tokens fed) per row, batch 1, two passes, answer span found by re-tokenizing."""
    import torch

    s_aq, s_a, fed = [], [], 0
    for messages in conversations:
        prompt = tok.apply_chat_template(messages[:-1], chat_template=template, add_generation_prompt=True,
                                         tokenize=False)
        answer = messages[-1]["content"].strip()
        whole = prompt + answer
        # s(A): the answer alone
        ids_a = tok.encode(answer, return_tensors="pt", truncation=True, max_length=max_length).to(device)
        with torch.no_grad():
            loss_a = model(ids_a, labels=ids_a.contiguous()).loss
        # s(A|Q): the whole text, labels masked up to where the answer starts
        ids = tok.encode(whole, return_tensors="pt", truncation=True, max_length=max_length,
                         add_special_tokens=False).to(device)
        start = whole.rfind(answer)
        start_token = len(tok.encode(whole[:start], add_special_tokens=False))
        labels = ids.clone()
        labels[0, :start_token] = -100
        with torch.no_grad():
            loss_aq = model(ids, labels=labels).loss
        s_aq.append(float(loss_aq))
        s_a.append(float(loss_a))
        fed += ids.shape[1] + ids_a.shape[1]
    return np.array(s_aq), np.array(s_a), fed


# ---- models ---------------------------------------------------------------------------------------------------


def qwen2_shaped(out: Path, smoke: bool) -> Path:
    """A random-init model in Qwen2.5-0.5B's shape (24 layers, 896 hidden, GQA 14/2), with the packaged Gemma
    tokenizer's vocabulary (the one tokenizer we have offline), saved in bf16."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    from infuse.operators.common.models import local_model_path

    tok = AutoTokenizer.from_pretrained(local_model_path())
    if smoke:
        shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2)
    else:
        shape = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                     num_key_value_heads=2)
    config = Qwen2Config(vocab_size=len(tok), max_position_embeddings=32768, tie_word_embeddings=True,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         **shape)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    return float(spearmanr(a[ok], b[ok]).statistic)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--rows", type=int, default=None, help="default 150 (CPU), 400 (GPU), 6 (smoke)")
    ap.add_argument("--model", default=None, help="a local model dir (default: CPU Gemma 3 270M, GPU Qwen2-shaped)")
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--device", default=None, help="override: cpu | cuda | cuda:1 ...")
    ap.add_argument("--dtypes", default=None, help="infuse dtypes to time, comma-separated (CPU: float32,bfloat16)")
    ap.add_argument("--engine", choices=["transformers", "vllm"], default="transformers",
                    help="vllm: also time the prompt_logprobs engine (GPU, vllm installed)")
    ap.add_argument("--batch-tokens", type=int, default=16_384)
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from infuse.operators.common.models import local_model_path
    from infuse.operators.select.ifd import HFLossScorer, compute_ifd
    from infuse.operators.select.scorers import scorer_template

    device = args.device or ("cuda" if args.gpu else "cpu")
    n = args.rows or (6 if args.smoke else 400 if args.gpu else 150)
    conversations = load_rows(args.data, n)
    tmp = tempfile.TemporaryDirectory(prefix="ifd-bench-")
    if args.model:
        path = args.model
    elif args.gpu:
        path = str(qwen2_shaped(Path(tmp.name) / "qwen2-shaped", args.smoke))
    else:
        path = str(local_model_path())
    dtypes = (args.dtypes or ("bfloat16" if args.gpu else "float32,bfloat16")).split(",")
    torch.manual_seed(0)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, threads {torch.get_num_threads()}"
          + (f", GPU {torch.cuda.get_device_name(0)}" if device.startswith("cuda") else ""))
    print(f"model: {path}\nrows: {len(conversations)} from {args.data.name}")

    tok = AutoTokenizer.from_pretrained(path)
    template, _ = scorer_template(tok, path, None)

    # the reference: fp32, output_hidden_states=True, batch 1
    ref_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, output_hidden_states=True)
    ref_model.to(device).eval()
    reference_ifd(ref_model, tok, template, conversations[:1], device)  # warm-up
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    r_aq, r_a, r_fed = reference_ifd(ref_model, tok, template, conversations, device)
    _sync(device)
    ref_s, ref_cpu = time.perf_counter() - t0, time.process_time() - c0
    del ref_model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    ref_ifd, ref_ppl = r_aq / r_a, np.exp(r_aq - r_a)
    print(f"\nreference (batch 1, fp32, full logits): {ref_s:.1f} s (CPU {ref_cpu:.1f} s), {r_fed / ref_s:,.0f} tokens/s")

    results = []
    for dtype in dtypes:
        scorer, tok2 = HFLossScorer.load(path, dtype=dtype, device=device, batch_tokens=args.batch_tokens,
                                         max_batch=args.max_batch)
        compute_ifd(scorer, tok2, template, conversations[:2])  # warm-up
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        got = compute_ifd(scorer, tok2, template, conversations)
        _sync(device)
        s, cpu = time.perf_counter() - t0, time.process_time() - c0
        fed = int(got.prompt_tokens.sum() + 2 * got.answer_tokens.sum())
        results.append(report(f"infuse {dtype}", s, fed, ref_s, got.loss_ratio, got.ppl_ratio, ref_ifd, ref_ppl,
                              got.s_a_given_q, r_aq, cpu, ref_cpu))
        del scorer
    if args.engine == "vllm":
        from infuse.operators.select.ifd_vllm import VLLMLossScorer

        scorer = VLLMLossScorer(path, dtype="bfloat16")
        compute_ifd(scorer, tok, template, conversations[:2])
        t0, c0 = time.perf_counter(), time.process_time()
        got = compute_ifd(scorer, tok, template, conversations)
        s, cpu = time.perf_counter() - t0, time.process_time() - c0
        fed = int(got.prompt_tokens.sum() + 2 * got.answer_tokens.sum())
        results.append(report("infuse vllm bf16", s, fed, ref_s, got.loss_ratio, got.ppl_ratio, ref_ifd, ref_ppl,
                              got.s_a_given_q, r_aq, cpu, ref_cpu))
    print(f"\nloss ratio vs perplexity ratio, same reference scores: Spearman {spearman(ref_ifd, ref_ppl):.3f} "
          f"(the two IFD variants rank rows differently); IFD >= 1: {int((ref_ifd >= 1).sum())} of {len(ref_ifd)}")
    print("\n| engine | wall | CPU time | tokens/s | speedup (wall) | speedup (CPU time) | Spearman IFD | "
          "Spearman ppl ratio | max abs dS(A|Q) |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| reference, batch 1 fp32 | {ref_s:.1f} s | {ref_cpu:.1f} s | {r_fed / ref_s:,.0f} | 1.00× | 1.00× | | | |")
    for r in results:
        print(f"| {r['label']} | {r['wall']:.1f} s | {r['cpu']:.1f} s | {r['tps']:,.0f} | **{r['speedup']:.2f}×** | "
              f"{r['speedup_cpu']:.2f}× | {r['rho']:.4f} | {r['rho_ppl']:.4f} | {r['max_diff']:.2e} |")
    tmp.cleanup()


def report(label, s, fed, ref_s, ifd, ppl, ref_ifd, ref_ppl, s_aq, r_aq, cpu, ref_cpu) -> dict:
    """One engine's line; CPU time (all threads of this process) is less skewed than wall time on a shared box."""
    out = {"label": label, "wall": s, "cpu": cpu, "tps": fed / s, "speedup": ref_s / s,
           "speedup_cpu": ref_cpu / cpu if cpu > 0 else float("nan"), "rho": spearman(ifd, ref_ifd),
           "rho_ppl": spearman(ppl, ref_ppl), "max_diff": float(np.nanmax(np.abs(s_aq - r_aq)))}
    print(f"{label}: {s:.1f} s (CPU {cpu:.1f} s), {out['tps']:,.0f} tokens/s, speedup {out['speedup']:.2f}x "
          f"(CPU time {out['speedup_cpu']:.2f}x), Spearman IFD "
          f"{out['rho']:.4f}, ppl ratio {out['rho_ppl']:.4f}, max |s(A|Q) - ref| {out['max_diff']:.2e}")
    return out


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
