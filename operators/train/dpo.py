"""Preference optimisation in the worker: a new LoRA (or DoRA) adapter over the SFT model, trained with trl.

DPO (loss types sigmoid, ipo, hinge: trl's DPOTrainer) needs a reference
model, the SFT model, and it is loaded once: the SFT result is materialised in
memory (its adapter merged into the base, or its full weights), a fresh
adapter is attached on top, and trl takes the reference log-probs with that
adapter disabled. `precompute_ref_log_probs` scores the data once up front
instead of on every step. SimPO and ORPO need no reference: SimPO is
trl.experimental's CPOTrainer with loss_type simpo and no behaviour-cloning
term (cpo_alpha 0): -logsigmoid(beta * (mean token log-prob of chosen - that
of rejected) - gamma); ORPO is trl.experimental's ORPOTrainer. The output is
the adapter in `final/` with the SFT model it was trained over in
`final/sft/` (hard links), layout `adapter+sft`: merge folds base, SFT and
the adapter into one model.

Before DPO training, the reference log-probs of the first pairs are taken
through the trainer's own reference path and written to result.json
(`ref_check`), so a test can hold them against the SFT model scored
independently. On CPU the LM head scores only the completion tokens (see
`compact_head_on_cpu`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch
from transformers import PrinterCallback

from infuse.operators.train.config import Job
from infuse.operators.train.merge import materialize
from infuse.operators.train.modeling import VARLEN, apply_liger, load_model, lora_config, param_count
from infuse.operators.train.session import (Session, atomic_json, checkpoint_step, history, last_checkpoint,
                                            link_tree)
from infuse.operators.train.trainer import EventCallback, say

LOSSES = {"sigmoid": ["sigmoid"], "ipo": ["ipo"], "hinge": ["hinge"]}  # trl DPOTrainer loss_type, with a reference
REFERENCE_FREE = ("simpo", "orpo")  # trl.experimental CPOTrainer (loss_type simpo) and ORPOTrainer


def compact_head_on_cpu() -> None:
    """Score only the completion positions on CPU too. trl's fused LM head picks them out only where Triton runs
    (elsewhere a varying count would recompile kernels), so on CPU every prompt and padding position went through
    the LM head: for a 262k-token vocabulary, most of a step. Its torch tiles take any count on CPU."""
    import trl.trainer.utils as fused
    from trl.kernels.chunked_logprob import _use_triton

    fused._use_triton = lambda device: device.type == "cpu" or _use_triton(device)


def build_pair_sets(s: Session) -> tuple[dict[str, Any], dict[str, Any]]:
    """Conversational DPO rows; a pair whose prompt alone fills max_length, or with an empty side, is a reject."""
    from datasets import Dataset

    rows = pq.read_table(s.job.data["pairs"]).to_pylist() if s.job.data.get("pairs") else []
    max_length = s.job.train.max_length
    kept, rejects = [], []
    for r in rows:
        pid = str(r.get("pair_id"))
        prompt = [{"role": m["role"], "content": m["content"]} for m in r.get("prompt") or []]
        if not prompt or not (r.get("chosen") or "").strip() or not (r.get("rejected") or "").strip():
            rejects.append({"id": pid, "reason": "malformed_pair", "message": "empty prompt, chosen or rejected",
                            "split": "train"})
            continue
        ids = s.tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True, return_dict=True,
                                              chat_template=s.template.source)["input_ids"]
        if len(ids) >= max_length:
            rejects.append({"id": pid, "reason": "too_long", "message": f"the prompt fills max_length {max_length}",
                            "split": "train"})
            continue
        kept.append({"pair_id": pid, "prompt": prompt, "chosen": [{"role": "assistant", "content": r["chosen"]}],
                     "rejected": [{"role": "assistant", "content": r["rejected"]}]})
    if not kept:
        raise ValueError("no trainable preference pairs (see the rejects for why)")
    info = {"rejects": rejects, "train": {"samples": len(rows), "kept": len(kept)}}
    return {"train": Dataset.from_list(kept)}, info


def load_policy(s: Session) -> Any:
    """The SFT model, materialised once (adapter merged into its base): policy start and reference in one."""
    sft = Path(s.job.extra["sft"])
    model = materialize(sft, Path(s.job.base), lambda p: load_model(str(p), s.dtype, s.attn))
    model.config.use_cache = False
    apply_liger(model, s.job.train.liger, s.gpu)
    s.set_generation_ends(model)
    return model


def ref_check(trainer: Any, ds: Any, n: int) -> dict[str, Any]:
    """Reference log-probs of the first n pairs through the trainer's own reference path."""
    if n <= 0:
        return {}
    n = min(n, len(ds))
    cols = [c for c in ("prompt_ids", "chosen_ids", "rejected_ids") if c in ds.column_names]
    batch = trainer.data_collator([{c: ds[i][c] for c in cols} for i in range(n)])
    inputs = {k: v.to(trainer.accelerator.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    was_training = trainer.model.training
    trainer.model.eval()
    with torch.no_grad():
        chosen, rejected = trainer.compute_ref_log_probs(trainer.model, inputs)
    trainer.model.train(was_training)
    return {"pair_ids": [ds[i]["pair_id"] for i in range(n)], "chosen_logps": chosen.float().tolist(),
            "rejected_logps": rejected.float().tolist()}


def train_dpo(job: Job) -> None:
    s = Session(job)
    if s.attn == VARLEN:  # DPO batches are padded (trl's padding-free DPO is off); varlen needs one flat row
        s.attn = "sdpa"
    if not s.gpu:
        compact_head_on_cpu()
    x = job.extra
    loss_type, beta = x.get("loss_type", "sigmoid"), float(x.get("beta", 0.1))
    sets, info = s.prepared(lambda: build_pair_sets(s))
    train_rows, total, rows_per_step = s.schedule(sets["train"])
    say(f"dpo: {info['train']['kept']} pairs; {total} steps of {rows_per_step} pairs; loss {loss_type}, beta {beta}"
        + (f", gamma {x.get('simpo_gamma', 0.5)}" if loss_type == "simpo" else ""))
    model = load_policy(s)
    n_params = param_count(model)[0]
    ckpts = s.out / "checkpoints"
    resume = last_checkpoint(ckpts)
    events = EventCallback(total)
    peft = lora_config(job.lora, dora=job.method == "dora")
    build = TRAINERS.get(loss_type, _dpo_trainer)
    trainer = build(s, model, train_rows, s.args(ckpts, total, False), peft, [events])
    trainer.remove_callback(PrinterCallback)
    check = _reference_check(s, trainer, loss_type)
    if resume:
        say(f"dpo: resuming from {Path(resume).name}")
    trainer.train(resume_from_checkpoint=resume)
    tokens = getattr(trainer, "_total_train_tokens", 0)  # ORPOTrainer and CPOTrainer do not count them
    final = s.final_dir()
    trainer.save_model(str(final))
    if s.is_main:
        trainer.accelerator.unwrap_model(trainer.model).generation_config.save_pretrained(str(final))
        link_tree(Path(x["sft"]), final / "sft")
    metrics = s.metrics(tokens, events.train_s, n_params)
    result = {"kind": "dpo", "method": job.method, "total_steps": total,
              "history": history(trainer.state.log_history), "prep": info, "metrics": metrics,
              "template": s.template.to_card(), "resumed_from": checkpoint_step(resume),
              "step_rates": events.tokens_per_s, "ref_check": check, "dpo": _settings(x, loss_type)}
    card = s.card(metrics=metrics, steps=total, layout="adapter+sft", dpo=result["dpo"],
                  sft={"card": _card_of(Path(x["sft"]))})
    s.finish(final, card, result)


def _dpo_trainer(s: Session, model: Any, rows: Any, args: dict[str, Any], peft: Any, callbacks: list[Any]) -> Any:
    """trl's DPOTrainer: sigmoid, ipo or hinge loss against the reference (the policy with its adapter off)."""
    from trl import DPOConfig, DPOTrainer

    x = s.job.extra
    config = DPOConfig(**args, beta=float(x.get("beta", 0.1)), loss_type=LOSSES[x.get("loss_type", "sigmoid")],
                       max_length=s.job.train.max_length,
                       precompute_ref_log_probs=bool(x.get("precompute_ref_log_probs", False)),
                       dataset_num_proc=None, disable_dropout=True)
    return DPOTrainer(model=model, args=config, train_dataset=rows, processing_class=s.tokenizer, peft_config=peft,
                      callbacks=callbacks)


def _orpo_trainer(s: Session, model: Any, rows: Any, args: dict[str, Any], peft: Any, callbacks: list[Any]) -> Any:
    """ORPO: no reference model at all (trl's experimental ORPOTrainer)."""
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    config = ORPOConfig(**args, beta=float(s.job.extra.get("beta", 0.1)), max_length=s.job.train.max_length,
                        disable_dropout=True, dataset_num_proc=None)
    return ORPOTrainer(model=model, args=config, train_dataset=rows.remove_columns(["pair_id"]),
                       processing_class=s.tokenizer, peft_config=peft, callbacks=callbacks)


def _simpo_trainer(s: Session, model: Any, rows: Any, args: dict[str, Any], peft: Any, callbacks: list[Any]) -> Any:
    """SimPO: no reference, mean token log-probs, target margin gamma; no NLL term (CPOTrainer, cpo_alpha 0)."""
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    x = s.job.extra
    config = CPOConfig(**args, beta=float(x.get("beta", 0.1)), loss_type="simpo", cpo_alpha=0.0,
                       simpo_gamma=float(x.get("simpo_gamma", 0.5)), max_length=s.job.train.max_length,
                       disable_dropout=True, dataset_num_proc=None)
    return CPOTrainer(model=model, args=config, train_dataset=rows.remove_columns(["pair_id"]),
                      processing_class=s.tokenizer, peft_config=peft, callbacks=callbacks)


TRAINERS = {"orpo": _orpo_trainer, "simpo": _simpo_trainer}  # every other loss type: _dpo_trainer


def _reference_check(s: Session, trainer: Any, loss_type: str) -> dict[str, Any]:
    """result.json's ref_check: taken once and kept in ref_check.json (a resumed run reports the same); none
    for a loss without a reference model."""
    path = s.out / "ref_check.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    if loss_type in REFERENCE_FREE:
        return {}
    check = ref_check(trainer, trainer.train_dataset, int(s.job.extra.get("ref_check", 4)))
    if s.is_main:
        atomic_json(path, check)
    return check


def _settings(x: dict[str, Any], loss_type: str) -> dict[str, Any]:
    """The preference settings as the result and the card record them (the job's values, as given)."""
    return {"beta": x.get("beta"), "loss_type": x.get("loss_type"),
            "precompute_ref_log_probs": bool(x.get("precompute_ref_log_probs")),
            **({"simpo_gamma": float(x.get("simpo_gamma", 0.5))} if loss_type == "simpo" else {})}


def _card_of(model_dir: Path) -> dict[str, Any] | None:
    """The card.json of the SFT model trained over, or None when it has none."""
    path = model_dir / "card.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
