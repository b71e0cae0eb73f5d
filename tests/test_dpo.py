"""Alignment: preference pairs, DPO over the SFT model and the merge of both, on tiny config-built models.

Unit tests pin the pair rules (a grounded reply is never the rejected one; no
eval question becomes a prompt; user pairs in both formats). One flow runs
corpus -> sft -> preference -> dpo -> merge for real and checks that DPO raises
the chosen-over-rejected margin on held-out pairs compared with the SFT model,
that the trainer's reference log-probs are the SFT model's, and that the merge
is base + SFT + DPO. A dpo worker SIGKILLed after its first checkpoint resumes
from it and ends where an unbroken run ends.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from tiny_models import FACTS, fact_rows, make_tiny_model

from infuse.operators.preference import Candidate, PairOptions, Prompt, build_pairs, prompts_from_rows, question_key
from infuse.operators.preference.formats import read_user_pairs
from infuse.operators.qa_filter.grounding import grounding_score

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "preference"
SYSTEM = "Answer briefly."
SOURCE = "Field notes from Quellmoor. Quellmoor was founded by Anika Trell in the year of the long rains."


# ---- pair rules --------------------------------------------------------------------------------------------------

def _prompt(sid: str = "s1") -> Prompt:
    """A question whose chosen answer paraphrases its source (so near-identical is not the same as grounded)."""
    return Prompt(sid, [{"role": "user", "content": "Who founded Quellmoor?"}],
                  "Anika Trell started the town of Quellmoor.", SOURCE)


def test_a_grounded_reply_is_never_the_rejected_one():
    o = PairOptions()
    grounded = Candidate("s1", "sft", 0, "Quellmoor was founded by Anika Trell in the year of the long rains.")
    near = Candidate("s1", "sft", 1, "Anika Trell started the town of Quellmoor, people say.")
    cut = Candidate("s1", "sft", 2, "Some travellers say that a wandering", finish_reason="length")
    empty = Candidate("s1", "base", 0, "  ")
    fluent = Candidate("s1", "base", 1, "It was built by sailors from the northern islands long ago.")
    looping = Candidate("s1", "base", 2, "the town the town the town the town the town")
    pairs, rejects = build_pairs([_prompt()], [grounded, near, cut, empty, fluent, looping], o)
    assert not rejects and len(pairs) == 1
    assert pairs[0]["rejected"] == fluent.text and pairs[0]["rejected_from"] == "base"
    assert grounding_score(pairs[0]["rejected"], SOURCE) < o.max_grounding
    assert [c.verdict for c in (grounded, near, cut, empty, fluent, looping)] == [
        "grounded", "near_identical", "truncated", "empty", "used", "usable"]

    # only grounded (and broken) replies: no pair, and the drop says why
    only = [Candidate("s2", "sft", k, t) for k, t in enumerate(
        ["Quellmoor was founded by Anika Trell in the year of the long rains.", "Anika Trell founded Quellmoor.", ""])]
    pairs, rejects = build_pairs([_prompt("s2")], only, o)
    assert pairs == [] and [r.reason for r in rejects] == ["rejected_grounded"]
    assert sorted(c.verdict for c in only) == ["empty", "grounded", "grounded"]


def test_no_eval_question_becomes_a_preference_prompt():
    rows = fact_rows(1, system=SYSTEM) + [{**fact_rows(1)[0], "sample_id": "general-0", "kind": "general"}]
    evals = [{"messages": [{"role": "user", "content": "  what colour is the ZORBLAT river"}]}]
    sources = {f"chunk-{i}": f"{q} {a}" for i, (q, a) in enumerate(FACTS)}
    del sources["chunk-3"]
    prompts, rejects = prompts_from_rows(rows, sources, evals)
    assert [p.sample_id for p in prompts] == ["fact-1-0", "fact-2-0"]
    assert {r.id: r.reason for r in rejects} == {"fact-0-0": "eval_prompt", "fact-3-0": "no_source"}
    assert prompts[0].prompt == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": FACTS[1][0]}]
    assert prompts[0].chosen == FACTS[1][1] and prompts[0].source == " ".join(FACTS[1])
    assert question_key("What colour is the Zorblat river?") == question_key(evals[0]["messages"][0]["content"])


def test_user_pairs_in_llama_factory_json_and_jsonl(tmp_path):
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text("\n".join([
        json.dumps({"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."}),
        "{not json",
        json.dumps({"prompt": [{"role": "user", "content": "Hi"}], "chosen": {"role": "assistant", "content": "Hello"},
                    "rejected": [{"role": "assistant", "content": "Go away"}]}),
        json.dumps({"prompt": "Empty rejected", "chosen": "x", "rejected": " "})]), encoding="utf-8")
    pairs, rejects = read_user_pairs([str(DATA / "dpo_demo.json"), str(jsonl)])
    by_id = {p["pair_id"]: p for p in pairs}
    assert sorted(by_id) == ["user:dpo_demo.json:0", "user:dpo_demo.json:1", "user:dpo_demo.json:3",
                             "user:mine.jsonl:1", "user:mine.jsonl:3"]
    multi = by_id["user:dpo_demo.json:1"]
    assert [m["role"] for m in multi["prompt"]] == ["system", "user", "assistant", "user"]
    assert (multi["chosen"], multi["rejected"]) == ("4", "22")
    assert by_id["user:dpo_demo.json:3"]["prompt"] == [{"role": "user", "content": "Translate to French:\ncat"}]
    assert by_id["user:mine.jsonl:3"]["rejected"] == "Go away"
    assert sorted(r.id for r in rejects) == ["user:dpo_demo.json:2", "user:mine.jsonl:2", "user:mine.jsonl:4"]
    assert {r.reason for r in rejects} == {"malformed_pair"}


# ---- the flow: sft -> preference -> dpo -> merge ----------------------------------------------------------------

WRONG = ["I am not sure, maybe it is dark green.", "I am not sure, maybe it was a king.",
         "I am not sure, maybe it has no moons."]
HELD_OUT = [(FACTS[3][0], FACTS[3][1], "I am not sure, maybe it eats stones."),
            ("Hello, how can I help you today?", "You are a helpful assistant.", "I am not sure, maybe it is a fox.")]
# SFT is also taught, more often than the true answer, a fluent answer to the first question that its source does
# not support (another fact's answer): the SFT model says it, so generated pairs (rejected = that) are sure to exist
CONFIDENTLY_WRONG = FACTS[2][1]


def completion_logp(model, tok, prompt: list[dict], reply: str) -> torch.Tensor:
    """Sum of the reply's token log-probs after the prompt (its end-of-turn included), as trl scores it."""
    p = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    full = tok.apply_chat_template(prompt + [{"role": "assistant", "content": reply}], tokenize=True,
                                   return_dict=True)["input_ids"]
    assert full[:len(p)] == p
    ids = torch.tensor([full])
    with torch.inference_mode():
        logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
    return logp.gather(-1, ids[0, 1:, None])[len(p) - 1:, 0].sum()


def margin(model, tok, question: str, chosen: str, rejected: str) -> float:
    prompt = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    return float(completion_logp(model, tok, prompt, chosen) - completion_logp(model, tok, prompt, rejected))


def align_recipe(tmp_path: Path, tiny: Path) -> Path:
    """corpus (the facts' rows, one held out for eval, four general rows with a confidently wrong answer, and a
    chunk per fact) -> sft (lora) -> preference (sampled from base and sft, plus three user pairs) -> dpo -> merge."""
    rows = fact_rows(2, system=SYSTEM) + [{**fact_rows(1, system=SYSTEM)[3], "sample_id": "eval-3", "split": "eval"}]
    wrong = {**rows[0], "kind": "general", "chunk_id": None, "doc_id": None,
             "messages": rows[0]["messages"][:-1] + [{"role": "assistant", "content": CONFIDENTLY_WRONG}]}
    rows += [{**wrong, "sample_id": f"general-wrong-{k}"} for k in range(4)]  # general rows are no prompts
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    (tmp_path / "chunks.jsonl").write_text("\n".join(json.dumps({"chunk_id": f"chunk-{i}", "doc_id": f"doc-{i}",
                                                                 "text": f"Notes. {a} That is all."})
                                                     for i, (_, a) in enumerate(FACTS)), encoding="utf-8")
    user = tmp_path / "pairs.jsonl"
    user.write_text("\n".join(json.dumps({"prompt": [{"role": "system", "content": SYSTEM},
                                                     {"role": "user", "content": q}], "chosen": a, "rejected": w})
                              for (q, a), w in zip(FACTS, WRONG)), encoding="utf-8")
    (tmp_path / "docs").mkdir()
    off = ("parse", "chunk", "clean", "filter", "dedup", "synthesize", "qa_filter", "select", "mix")
    recipe = {"name": "align", "input": str(tmp_path / "docs"), "storage": str(tmp_path / "runs"),
              "plugins": [str(REPO / "tests" / "pref_steps.py")], "model": {"path": str(tiny)},
              "steps": {**{s: {"enabled": False} for s in off},
                        "corpus": {"rows": str(tmp_path / "rows.jsonl"), "chunks": str(tmp_path / "chunks.jsonl")},
                        "sft": {"enabled": True, "method": "lora", "max_steps": 36, "save_steps": 100, "batch_size": 1,
                                "max_length": 128,
                                "learning_rate": 1e-2, "lr_scheduler": "constant", "warmup_ratio": 0.0,
                                "lora": {"r": 16, "alpha": 32, "dropout": 0.0}},
                        "preference": {"enabled": True, "sample_from": ["base", "sft"], "samples_per_prompt": 2,
                                       "max_new_tokens": 16, "temperature": 0.2, "user_data": [str(user)],
                                       "llm": {"backend": "transformers", "device": "cpu", "seed": 0}},
                        "dpo": {"enabled": True, "max_steps": 5, "save_steps": 100, "batch_size": 3, "max_length": 128,
                                "learning_rate": 5e-3, "lr_scheduler": "constant", "warmup_ratio": 0.0, "beta": 0.1,
                                "lora": {"r": 8, "alpha": 16, "dropout": 0.0}},
                        "merge": {"enabled": True, "dtype": "float32"}}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def assert_generated_pairs_are_safe(pairs: list[dict], rejects: list[dict]) -> None:
    """No eval question among the prompts, and a generated pair's rejected reply is never a grounded one: here it
    is the SFT model's confidently wrong answer."""
    generated = [p for p in pairs if p["origin"] == "generated"]
    assert {p["sample_id"] for p in generated} == {"fact-0-0", "fact-0-1"}, "the SFT model's wrong answer is rejected"
    assert all(p["rejected"] == CONFIDENTLY_WRONG and p["rejected_from"] == "sft" for p in generated)
    held = question_key(FACTS[3][0])
    assert all(question_key(m["content"]) != held for p in generated for m in p["prompt"])
    assert sorted(r["id"] for r in rejects if r["reason"] == "eval_prompt") == ["fact-3-0", "fact-3-1"]
    for p in generated:
        assert p["rejected_grounding"] < 0.3 and p["rejected"] != p["chosen"]


def assert_every_sample_has_a_fate(pref: dict, pairs: list[dict], rejects: list[dict]) -> None:
    """Both models sampled every prompt; grounded replies are never rejected ones; every sampled prompt became a
    pair or a reject; the user's three pairs are in."""
    generated = [p for p in pairs if p["origin"] == "generated"]
    samples = pq.read_table(pref["outputs"]["samples"]["path"]).to_pylist()
    grounded = [s for s in samples if s["verdict"] == "grounded"]
    assert grounded, "the SFT model answered some questions from the source: those replies are never rejected"
    assert not {(s["sample_id"], s["text"]) for s in grounded} & {(p["sample_id"], p["rejected"]) for p in generated}
    assert len(samples) == 6 * 2 * 2 and {s["model"] for s in samples} == {"base", "sft"}
    fates = {p["sample_id"] for p in generated} | {r["id"] for r in rejects}
    assert {s["sample_id"] for s in samples} <= fates, "every sampled prompt became a pair or a reject"
    assert sum(p["origin"].startswith("user:") for p in pairs) == 3


def assert_exports_hold_every_pair(pref: dict, pairs: list[dict]) -> None:
    """Every pair in each tool's file, and the report says where they are and how to train on them."""
    exports = Path(pref["outputs"]["exports"]["path"])
    for name in ("llamafactory/infuse_pref_train.jsonl", "swift/train.jsonl", "openai/train.jsonl"):
        assert len((exports / name).read_text(encoding="utf-8").splitlines()) == len(pairs), name
    assert json.loads((exports / "llamafactory" / "dataset_info.json").read_text())["infuse_pref_train"]["ranking"]
    md = (Path(pref["report"]["path"]) / "report.md").read_text(encoding="utf-8")
    assert f"dataset_dir: {exports}/llamafactory" in md and "swift rlhf --rlhf_type dpo" in md


def assert_reference_is_the_sft_model(dpo: dict, pairs: list[dict], sft_model, tok) -> None:
    """Rewards logged and plotted; the trainer's reference log-probs are the SFT model's, scored here."""
    report = Path(dpo["report"]["path"])
    assert (report / "reward-margins.png").read_bytes()[:4] == b"\x89PNG"
    assert dpo["stats"]["rewards"]["last_margin"] > 0
    check = dpo["stats"]["ref_check"]
    by_id = {p["pair_id"]: p for p in pairs}
    assert len(check["pair_ids"]) >= 3
    for pid, c, r in zip(check["pair_ids"], check["chosen_logps"], check["rejected_logps"]):
        p = by_id[pid]
        assert c == pytest.approx(float(completion_logp(sft_model, tok, p["prompt"], p["chosen"])), abs=2e-3)
        assert r == pytest.approx(float(completion_logp(sft_model, tok, p["prompt"], p["rejected"])), abs=2e-3)


def assert_merged_is_base_sft_dpo(res: dict, tiny: Path, sft_dir: Path, sft_model, tok) -> None:
    """base + sft + dpo in one plain model, and on held-out pairs its margin beats the SFT model's."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from infuse.operators.train.card import read_card

    dpo_dir = Path(res["dpo"]["outputs"]["model"]["path"])
    assert read_card(dpo_dir)["layout"] == "adapter+sft" and (dpo_dir / "sft" / "adapter_model.safetensors").is_file()
    merged = AutoModelForCausalLM.from_pretrained(res["merge"]["outputs"]["merged"]["path"]).eval()
    stacked = PeftModel.from_pretrained(
        PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), sft_dir).merge_and_unload(),
        dpo_dir).eval()
    ids = torch.tensor([tok("Who founded Quellmoor? Quellmoor was founded by Anika Trell.")["input_ids"]])
    with torch.inference_mode():
        a, b, s = merged(ids).logits, stacked(ids).logits, sft_model(ids).logits
    assert torch.allclose(a, b, atol=1e-4), "merged = base + sft + dpo"
    assert (a - s).abs().max() > 1e-3, "the dpo adapter is in the merged weights"
    for question, chosen, rejected in HELD_OUT:
        assert margin(merged, tok, question, chosen, rejected) > margin(sft_model, tok, question, chosen, rejected)


@pytest.mark.usefixtures("prefect_server")
def test_dpo_over_sft_raises_the_held_out_margin_and_merges_into_base_sft_dpo(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from infuse.flows.pipeline import run_recipe

    tiny = make_tiny_model(tmp_path / "tiny")
    res = run_recipe(str(align_recipe(tmp_path, tiny)))
    pref = res["preference"]
    pairs = pq.read_table(pref["outputs"]["pairs"]["path"]).to_pylist()
    rejects = pq.read_table(pref["rejects"]["path"]).to_pylist()
    assert_generated_pairs_are_safe(pairs, rejects)
    assert_every_sample_has_a_fate(pref, pairs, rejects)
    assert_exports_hold_every_pair(pref, pairs)
    sft_dir = Path(res["sft"]["outputs"]["model"]["path"])
    tok = AutoTokenizer.from_pretrained(sft_dir)
    sft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny), sft_dir).eval()
    assert_reference_is_the_sft_model(res["dpo"], pairs, sft_model, tok)
    assert_merged_is_base_sft_dpo(res, tiny, sft_dir, sft_model, tok)


# ---- resume after a real SIGKILL ---------------------------------------------------------------------------------

def kill_at_first_checkpoint(job, tmp_path: Path) -> list[int]:
    """Start the dpo worker under `accelerate launch` as launch.py starts it (its own process group) and SIGKILL
    the group as soon as its first complete checkpoint is on disk: the steps of the checkpoints it left."""
    from infuse.operators.train.config import LaunchOptions
    from infuse.operators.train.launch import WORKER, command
    from infuse.operators.train.session import last_checkpoint

    work = Path(job.output_dir)
    work.mkdir(parents=True)
    (work / "job.json").write_text(job.model_dump_json(indent=1), encoding="utf-8")
    cmd, env = command([WORKER, str(work / "job.json")], LaunchOptions())
    log = tmp_path / "killed.log"
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while last_checkpoint(work / "checkpoints") is None:  # a checkpoint with its trainer state written
            assert proc.poll() is None, f"the worker ended before its first checkpoint:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and the worker with it
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (work / "result.json").exists() and not (work / "final").exists(), "killed before the end"
    return sorted(int(p.name.split("-")[1]) for p in (work / "checkpoints").glob("checkpoint-*")
                  if (p / "trainer_state.json").is_file())


def test_a_sigkilled_dpo_run_resumes_from_its_checkpoint_and_ends_where_an_unbroken_run_ends(tmp_path):
    """The dpo worker is SIGKILLed as soon as its first complete checkpoint is on disk; the re-run resumes from
    it, trains only the steps after it, and ends with the loss and adapter of a run that was never killed."""
    from safetensors.torch import load_file
    from test_dpo_losses import dpo_job, sft_model

    from infuse.operators.train.config import LaunchOptions
    from infuse.operators.train.launch import run_job

    base, sft = sft_model(tmp_path / "models")
    steps = 12
    train = dict(steps=steps, batch_size=1, save_steps=2, save_total_limit=2, learning_rate=5e-3)
    unbroken = run_job(dpo_job(tmp_path / "ref", base, sft, "sigmoid", **train), LaunchOptions(), lambda line: None)
    job = dpo_job(tmp_path / "cut", base, sft, "sigmoid", **train)
    saved = kill_at_first_checkpoint(job, tmp_path)
    assert saved and 0 < saved[-1] < steps

    lines: list[str] = []
    logged: list[int] = []
    res = run_job(job, LaunchOptions(), lines.append,
                  on_event=lambda e: logged.append(e["step"]) if e["event"] == "log" else None)
    assert f"dpo: resuming from checkpoint-{saved[-1]}" in lines
    assert res["resumed_from"] == saved[-1]
    assert min(logged) == saved[-1] + 1 and max(logged) == steps, "only the steps after the checkpoint ran"
    assert res["total_steps"] == steps and max(h["step"] for h in res["history"]) == steps
    assert res["ref_check"] == unbroken["ref_check"], "the killed run's reference check is kept"
    last = [h["loss"] for h in res["history"] if "loss" in h][-1]
    assert last == pytest.approx([h["loss"] for h in unbroken["history"] if "loss" in h][-1], rel=1e-5)
    a = load_file(tmp_path / "ref" / "work" / "final" / "adapter_model.safetensors")
    b = load_file(Path(job.output_dir) / "final" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
