"""Training runs for real, on tiny config-built models, through the same `accelerate launch` path as the steps.

Learning (made-up facts are learned and answered), merge (plain transformers
answers like the adapter), hybrid (full then LoRA on one schedule), a
2-process data-parallel run on CPU (gloo), resume after a kill, validate-time
errors, and one slow run of the packaged Gemma 3 270M.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from safetensors.torch import load_file
from tiny_models import FACTS, fact_rows, make_tiny_model

from infuse.operators.common.dataset import SFT_SCHEMA
from infuse.operators.train.card import read_card
from infuse.operators.train.config import Job, LaunchOptions, LoraOptions, TrainOptions
from infuse.operators.train.launch import TrainingFailed, launch, run_job
from infuse.operators.train.merge import merge_model

REPO = Path(__file__).resolve().parent.parent
SYSTEM = "Answer briefly."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "base")


def write_rows(path: Path, rows: list[dict]) -> str:
    pq.write_table(pa.Table.from_pylist(rows, schema=SFT_SCHEMA), path)
    return str(path)


def job_for(tmp: Path, base: Path, method: str = "lora", steps: int = 30, **train) -> Job:
    data = write_rows(tmp / "train.parquet", fact_rows(2, system=SYSTEM))
    opts = {"learning_rate": 1e-2, "max_steps": steps, "batch_size": 1, "max_length": 128, "warmup_ratio": 0.0,
            "lr_scheduler": "constant", **train}
    return Job(kind="sft", base=str(base), output_dir=str(tmp / "work"), data={"train": data}, method=method,
               lora=LoraOptions(r=16, alpha=32, dropout=0.0), train=TrainOptions(**opts))


def greedy(model, tok, question: str, eos: list[int] | None = None) -> str:
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    enc = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        extra = {"eos_token_id": eos} if eos is not None else {}  # else the model's own generation config
        out = model.generate(**enc, max_new_tokens=24, do_sample=False, **extra)
    return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def losses(result: dict) -> list[float]:
    return [h["loss"] for h in result["history"] if "loss" in h]


# ---- learning and merge, through the flow ------------------------------------------------------------------------

def flow_recipe(tmp_path: Path, tiny: Path) -> Path:
    """A recipe of the rows (the facts, train and eval), sft (lora) and merge, every data step off."""
    rows = fact_rows(2, system=SYSTEM) + [{**r, "split": "eval", "sample_id": r["sample_id"] + "-eval"}
                                          for r in fact_rows(1, system=SYSTEM)]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    (tmp_path / "docs").mkdir()
    off = ("parse", "chunk", "clean", "filter", "dedup", "synthesize", "qa_filter")
    recipe = {"name": "train", "input": str(tmp_path / "docs"), "storage": str(tmp_path / "runs"),
              "plugins": [str(REPO / "tests" / "train_steps.py")], "model": {"path": str(tiny)},
              "steps": {**{s: {"enabled": False} for s in off},
                        "rows": {"path": str(tmp_path / "rows.jsonl")},
                        "sft": {"enabled": True, "method": "lora", "max_steps": 30, "batch_size": 1,
                                "max_length": 128, "learning_rate": 1e-2, "lr_scheduler": "constant",
                                "warmup_ratio": 0.0, "lora": {"r": 16, "alpha": 32, "dropout": 0.0}},
                        "merge": {"enabled": True}}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def assert_both_answer_the_facts(tiny: Path, adapter_dir: Path, merged_dir: Path) -> None:
    """The adapter over the base, and the merged model loaded with plain transformers, give every trained answer."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(adapter_dir)
    eos = GenerationConfig.from_pretrained(adapter_dir).eos_token_id
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), adapter_dir).eval()
    plain = AutoModelForCausalLM.from_pretrained(merged_dir).eval()  # no infuse code, no peft
    assert plain.dtype == torch.bfloat16
    plain_tok = AutoTokenizer.from_pretrained(merged_dir)
    for question, answer in FACTS:
        assert greedy(adapted, tok, question, eos) == answer
        assert greedy(plain, plain_tok, question) == answer  # stops at <end_of_turn> by its generation config


@pytest.mark.usefixtures("prefect_server")
def test_sft_learns_made_up_facts_and_the_merged_model_answers_the_same(tmp_path, tiny):
    """rows -> sft (lora) -> merge in a real flow: the loss on the answers falls far below its start, greedy
    generation gives each trained answer, and the merged model, loaded with plain transformers, says the same."""
    from infuse.flows.pipeline import run_recipe

    res = run_recipe(str(flow_recipe(tmp_path, tiny)))
    sft, merge = res["sft"], res["merge"]
    hist = sft["stats"]["metrics"]
    assert hist["tokens"] > 0 and hist["tokens_per_s"] > 0 and hist["world_size"] == 1
    report = Path(sft["report"]["path"])
    stats = json.loads((report / "stats.json").read_text())
    assert (report / "loss-curve.png").read_bytes()[:4] == b"\x89PNG"
    assert stats["template"]["name"] == "gemma" and stats["prep"]["train"]["kept"] == len(FACTS) * 2
    result = json.loads((tmp_path / "runs" / "artifacts" / "sft" / sft["key"] / "_work" / "result.json").read_text())
    train_losses = losses(result)
    assert train_losses[-1] < 0.2 * train_losses[0], train_losses
    evals = [h["eval_loss"] for h in result["history"] if "eval_loss" in h]
    assert evals and evals[-1] < 0.2 * train_losses[0]

    adapter_dir = Path(sft["outputs"]["model"]["path"])
    card = read_card(adapter_dir)
    assert card["method"] == "lora" and card["layout"] == "adapter" and card["data"]["train"]
    assert_both_answer_the_facts(tiny, adapter_dir, Path(merge["outputs"]["merged"]["path"]))


# ---- hybrid ----------------------------------------------------------------------------------------------------

def test_hybrid_trains_full_then_lora_on_one_schedule(tmp_path, tiny):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    job = job_for(tmp_path, tiny, "hybrid", steps=10, lr_scheduler="cosine", learning_rate=5e-3)
    job.switch_at = 0.3
    res = run_job(job, LaunchOptions(), on_log=lambda line: None)
    h = res["hybrid"]
    assert h["switch_step"] == 3 and len(h["full_losses"]) == 3 and len(h["lora_losses"]) == 7
    lrs = {r["step"]: r["learning_rate"] for r in res["history"] if "learning_rate" in r}
    assert sorted(lrs) == list(range(1, 11))
    for step, lr in lrs.items():  # one cosine over all 10 steps, across the switch (lr logged after step s-1)
        assert lr == pytest.approx(5e-3 * 0.5 * (1 + math.cos(math.pi * (step - 1) / 10)), rel=1e-4)
    final = Path(job.output_dir) / "final"
    card = read_card(final)
    assert card["layout"] == "adapter+base" and card["hybrid"]["switch_step"] == 3
    before, after = load_file(tiny / "model.safetensors"), load_file(final / "base" / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before), "the full phase updated the base"
    merged = merge_model(final, tmp_path / "merged", dtype="float32")
    assert merged["merged_from"]["method"] == "hybrid"
    tok = AutoTokenizer.from_pretrained(final)
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(final / "base"), final).eval()
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    for question, _ in FACTS:
        assert greedy(adapted, tok, question, [1]) == greedy(plain, tok, question, [1])


# ---- continued pretraining's general text -------------------------------------------------------------------------

def test_cpt_general_text_skips_and_counts_lines_that_are_not_json(tmp_path):
    """A .jsonl general text file with a broken line still gives its good lines (a U+2028 inside a string does not
    split one; a line without a `text` string gives nothing): the broken line is skipped and counted, not a crash.
    A clean file gets no count of bad lines; a plain text file gives its paragraphs."""
    from infuse.operators.train.cpt import read_texts

    mixed = tmp_path / "general.jsonl"
    mixed.write_text('{"text": "first\u2028still first"}\n{"text": broken\n\n{"other": 1}\r\n{"text": "last"}\n',
                     encoding="utf-8")
    (tmp_path / "clean.jsonl").write_text('{"text": "clean"}\n', encoding="utf-8")
    (tmp_path / "notes.txt").write_text("one paragraph\n\n  \n\nanother one\n", encoding="utf-8")
    files = [str(tmp_path / name) for name in ("general.jsonl", "clean.jsonl", "notes.txt")]
    job = Job(kind="cpt", base=str(tmp_path), output_dir=str(tmp_path), data={}, extra={"general_text": files})
    texts, counts = read_texts(job)
    assert texts == ["first\u2028still first", "last", "clean", "one paragraph", "another one"]
    assert counts == {"general.jsonl": 2, "general.jsonl bad lines": 1, "clean.jsonl": 1, "notes.txt": 2}


# ---- data parallel over two CPU processes ------------------------------------------------------------------------

def test_two_processes_train_different_rows_into_the_same_weights(tmp_path, tiny):
    job = job_for(tmp_path, tiny, "full", steps=4, learning_rate=1e-3)
    res = run_job(job, LaunchOptions(num_processes=2), on_log=lambda line: None)
    ranks = sorted(res["ranks"], key=lambda r: r["rank"])
    assert [r["rank"] for r in ranks] == [0, 1] and res["metrics"]["world_size"] == 2
    assert ranks[0]["first_batch"] != ranks[1]["first_batch"], "each rank reads its own rows"
    assert ranks[0]["weights"] == ranks[1]["weights"], "gradients were all-reduced: the replicas agree"
    assert res["metrics"]["tokens"] == ranks[0]["tokens"] + ranks[1]["tokens"]
    before = load_file(tiny / "model.safetensors")
    after = load_file(Path(job.output_dir) / "final" / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)


# ---- resume after a kill: a real SIGKILL of `infuse run` in tests/test_crash.py -----------------------------------

def test_a_failing_training_process_raises_with_its_last_output(tmp_path):
    """Any module under the launcher: a non-zero exit is TrainingFailed, with the process's own last lines."""
    lines: list[str] = []
    with pytest.raises(TrainingFailed, match="(?s)exited with code 1.*no-such-file.json"):
        launch(["json.tool", str(tmp_path / "no-such-file.json")], LaunchOptions(), tmp_path, lines.append)
    assert lines[0].startswith("launch: accelerate.commands.launch") and "--num_processes 1" in lines[0]


# ---- validate-time errors ----------------------------------------------------------------------------------------

def test_qlora_and_zero3_on_this_cpu_machine_are_validate_errors(tmp_path):
    from typer.testing import CliRunner

    from infuse.flows.cli import app

    (tmp_path / "docs").mkdir()
    recipe = {"input": str(tmp_path / "docs"), "steps": {"sft": {"enabled": True, "method": "qlora",
                                                                 "launch": {"strategy": "zero3"}}}}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    out = CliRunner().invoke(app, ["validate", str(path)])
    assert out.exit_code == 2
    assert "steps.sft: method qlora" in out.output and "CUDA GPU" in out.output
    assert "zero3 needs DeepSpeed" in out.output


# ---- the packaged Gemma 3 270M -----------------------------------------------------------------------------------

def answer_loss(model, tok, rows: list[dict]) -> float:
    """Mean loss on the assistant tokens of `rows`, tokenized as the worker does (the template saved with `tok`)."""
    from infuse.operators.train.data import IGNORE, tokenize_chat

    total = 0.0
    for r in rows:
        ids, labels = tokenize_chat(tok, r["messages"], tok.chat_template)
        assert any(x != IGNORE for x in labels)
        with torch.inference_mode():
            total += model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss.item()
    return total / len(rows)


@pytest.mark.slow
def test_gemma_lora_few_steps_lower_the_loss(tmp_path):
    """Three LoRA steps on the packaged Gemma lower the loss on one fixed batch (the four facts), measured with
    the adapter off (the base as it was) and on, so the comparison is not between different batches."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from infuse.operators.common.models import local_model_path

    job = job_for(tmp_path, local_model_path(), "lora", steps=3, learning_rate=1e-3, batch_size=2, max_length=64,
                  save_steps=100)
    res = run_job(job, LaunchOptions(), on_log=lambda line: None)
    assert len(losses(res)) == 3, res["history"]
    final = Path(job.output_dir) / "final"
    tok = AutoTokenizer.from_pretrained(final)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(local_model_path(),
                                                                           dtype=torch.float32), final).eval()
    batch = fact_rows(1, system=SYSTEM)
    after = answer_loss(model, tok, batch)
    with model.disable_adapter():
        before = answer_loss(model, tok, batch)
    assert after < 0.75 * before, (before, after)  # 5.9 -> 1.7 here; unchanged weights give equal losses
    card = read_card(final)
    assert card["template"]["name"] == "gemma" and card["base"]["model_type"] == "gemma3_text"
    shutil.rmtree(job.output_dir)


def test_method_auto_is_full_for_a_small_model_and_lora_for_a_large_one(tmp_path):
    from transformers import AutoModelForCausalLM

    from infuse.operators.train.modeling import params_on_disk
    from infuse.tasks.sft import Sft, SftOptions

    base = make_tiny_model(tmp_path / "tiny")
    n = params_on_disk(base)

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    assert n == sum(p.numel() for p in model.parameters())  # a tied LM head is stored, and counted, once
    assert Sft.method(SftOptions(), str(base)) == "full"  # the default is auto
    assert Sft.method(SftOptions(auto_full_max_params=n - 1), str(base)) == "lora"
    assert Sft.method(SftOptions(method="dora"), str(base)) == "dora"
    assert Sft.method(SftOptions(), str(tmp_path)) == "lora"  # no weights to count: the safe choice
