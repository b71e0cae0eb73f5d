"""Continued pretraining in the worker: causal-LM loss on every token of the domain text, packed.

The texts (the dedup step's chunks, plus optional general text files) are
tokenized with BOS/EOS, split into row-sized pieces and packed; attention
never crosses from one piece into another. Full fine-tuning by default; with
lora or dora the adapter is merged before saving, so the output is always a
plain model that `sft` starts from. The chat template chosen for the run is
saved with it (and checked by sft), though the text itself has no chat turns.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from transformers import PrinterCallback

from infuse.operators.common.jsonl import read_jsonl
from infuse.operators.train import data as D
from infuse.operators.train.config import Job
from infuse.operators.train.modeling import apply_liger, load_model, lora_config, param_count
from infuse.operators.train.session import Session, checkpoint_step, last_checkpoint
from infuse.operators.train.trainer import EventCallback, InfuseTrainer, say


def general_texts(path: Path) -> tuple[list[str], int]:
    """The texts of one general text file and how many of its lines are not JSON: a .jsonl file's `text`
    strings (a line that is not JSON is skipped and counted; one without a `text` string is skipped), else
    the file's paragraphs."""
    if path.suffix != ".jsonl":
        return [b.strip() for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()], 0
    lines = read_jsonl(path)
    bad = [line for line in lines if not line.ok]
    if bad:
        say(f"cpt: {path.name}: {len(bad)} line(s) skipped, e.g. line {bad[0].number}: {bad[0].message}")
    found = [v["text"] for v in (line.value for line in lines if line.ok)
             if isinstance(v, dict) and isinstance(v.get("text"), str)]
    return found, len(bad)


def read_texts(job: Job) -> tuple[list[str], dict[str, int]]:
    """The domain texts (Parquet column `text`) and the general text files, with a count per source (and
    `<file> bad lines` for a .jsonl file with lines that are not JSON)."""
    texts: list[str] = []
    counts: dict[str, int] = {}
    if job.data.get("text"):
        domain = [t for t in pq.read_table(job.data["text"], columns=["text"]).column("text").to_pylist() if t]
        texts += domain
        counts["domain"] = len(domain)
    for path in job.extra.get("general_text", []):
        p = Path(path)
        found, bad = general_texts(p)
        texts += found
        counts[p.name] = len(found)
        if bad:
            counts[f"{p.name} bad lines"] = bad
    return texts, counts


def train_cpt(job: Job) -> None:
    from trl import SFTConfig

    s = Session(job)
    t = job.train

    def build() -> tuple[dict[str, Any], dict[str, Any]]:
        texts, counts = read_texts(job)
        prep = D.prepare_text(texts, s.tokenizer, t.max_length)
        if not prep.examples:
            raise ValueError("no text to pretrain on")
        return {"train": D.pack(prep.examples, t.max_length, True)}, {"sources": counts, "tokens": prep.tokens,
                                                                       "pieces": len(prep.examples)}

    sets, info = s.prepared(build)
    rows, total, rows_per_step = s.schedule(sets["train"])
    say(f"cpt: {info['tokens']} tokens in {len(sets['train'])} rows; {total} steps of {rows_per_step} rows")
    model = load_model(job.base, s.dtype, s.attn)
    apply_liger(model, t.liger, s.gpu)
    s.set_generation_ends(model)
    n_params = param_count(model)[0]
    peft = lora_config(job.lora, dora=job.method == "dora") if job.method in ("lora", "dora") else None
    ckpts = s.out / "checkpoints"
    resume = last_checkpoint(ckpts)
    events = EventCallback(total)
    args = SFTConfig(**s.args(ckpts, total, False), max_length=None, packing=False, padding_free=True,
                     assistant_only_loss=False, shuffle_dataset=False)
    trainer = InfuseTrainer(model=model, args=args, train_dataset=rows, processing_class=s.tokenizer,
                            peft_config=peft, callbacks=[events])
    trainer.remove_callback(PrinterCallback)
    trainer.train(resume_from_checkpoint=resume)
    ranks = s.rank_report(trainer)
    final = s.final_dir()
    _save_plain(s, trainer, final, merge=peft is not None)
    metrics = s.metrics(trainer._total_train_tokens, events.train_s, n_params)
    numbers = [{k: v for k, v in e.items() if isinstance(v, (int, float))} for e in trainer.state.log_history]
    result = {"kind": "cpt", "method": job.method, "total_steps": total, "history": numbers, "prep": info,
              "metrics": metrics, "ranks": ranks, "resumed_from": checkpoint_step(resume),
              "template": s.template.to_card()}
    s.finish(final, s.card(metrics=metrics, steps=total, layout="full", sources=info["sources"]), result)


def _save_plain(s: Session, trainer: Any, final: Path, merge: bool) -> None:
    """The trained model into final/ as plain weights: an adapter run (merge) has its adapter folded in."""
    if merge:
        merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
        if s.is_main:
            merged.save_pretrained(str(final), safe_serialization=True)
            s.tokenizer.save_pretrained(str(final))
    else:
        trainer.save_model(str(final))
        if s.is_main:
            trainer.accelerator.unwrap_model(trainer.model).generation_config.save_pretrained(str(final))
