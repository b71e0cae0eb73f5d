"""Every dpo loss type, trained for real and held against its formula written out here in plain torch.

Each loss type is a dpo job run by the worker's own entry point, under
`accelerate launch` as the step runs it (all five jobs in one launch, one after
the other, to pay the interpreter start-up once), for two steps on a tiny
config-built model, with one batch holding all three pairs and a checkpoint
after each step. The loss trl logs at step 1 (policy = the SFT model: the new
LoRA adapter starts at zero) and at step 2 (policy = SFT + the adapter of
checkpoint-1) must equal the loss computed here from scratch: the model's
log-probs of each completion token after the chat prompt, summed or averaged
per sequence, for the policy and the reference (the SFT model), then

  sigmoid  -logsigmoid(beta * D)               D = (policy - ref)(chosen) - (policy - ref)(rejected), summed logps
  ipo      (D_avg - 1 / (2 beta))^2            D_avg: the same with each side divided by its completion length
  hinge    relu(1 - beta * D)
  simpo    -logsigmoid(beta * (avg_c - avg_r) - gamma)   no reference: avg_c / avg_r mean token log-probs
  orpo     NLL(chosen) - lambda * logsigmoid(log odds(avg_c) - log odds(avg_r))   no reference, lambda = beta

(trl's IPO takes the log-ratios per completion token; its CPO/ORPO trainers
append <eos> to each completion). So a loss type mapped to the wrong trl loss
(simpo to sigmoid_norm, ipo to sigmoid, ...) or a dropped option (gamma, beta,
cpo_alpha 0) fails here. One more test checks the dpo step hands loss_type,
beta and simpo_gamma to the worker's job.
"""
from __future__ import annotations

import json
import math
import shutil
import sys
import traceback
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from tiny_models import FACTS, make_tiny_model

from infuse.operators.train.card import write_card
from infuse.operators.train.config import Job, LaunchOptions, LoraOptions, TrainOptions
from infuse.operators.train.launch import launch

TESTS = Path(__file__).resolve().parent
SYSTEM = "Answer briefly."
WRONG = ["I am not sure, maybe it is dark green.", "No.", "I am not sure, maybe it has no moons at all."]
# chosen and rejected of different lengths, so a summed and an averaged log-prob tell apart
PAIRS = [(FACTS[i][0], FACTS[i][1], WRONG[i]) for i in range(3)]
LOSS_OPTIONS = {"sigmoid": {"beta": 0.1}, "ipo": {"beta": 0.1}, "hinge": {"beta": 0.1},
                "simpo": {"beta": 2.0, "simpo_gamma": 0.7}, "orpo": {"beta": 0.5}}


def dpo_job(work: Path, base: Path, sft: Path, loss_type: str, steps: int = 2, **train) -> Job:
    rows = [{"pair_id": f"p{i}", "prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}],
             "chosen": c, "rejected": r} for i, (q, c, r) in enumerate(PAIRS)]
    work.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), work / "pairs.parquet")
    opts = {"learning_rate": 1e-2, "max_steps": steps, "batch_size": len(PAIRS), "max_length": 128,
            "warmup_ratio": 0.0, "lr_scheduler": "constant", "save_steps": 1, "save_total_limit": steps, **train}
    return Job(kind="dpo", base=str(base), output_dir=str(work / "work"), data={"pairs": str(work / "pairs.parquet")},
               method="lora", lora=LoraOptions(r=8, alpha=16, dropout=0.0), train=TrainOptions(**opts),
               extra={"sft": str(sft), "loss_type": loss_type, **LOSS_OPTIONS[loss_type]})


def sft_model(root: Path) -> tuple[Path, Path]:
    """(base, sft): a tiny random model, and the same weights as an infuse full SFT model (its card says so)."""
    base = make_tiny_model(root / "base")
    sft = root / "sft"
    shutil.copytree(base, sft)
    write_card(sft, {"kind": "sft", "method": "full", "layout": "full"})
    return base, sft


def run_jobs(paths: list[str]) -> None:
    """`python -m test_dpo_losses JOB.json ...`: the dpo worker's entry point over each job in turn; a job that
    fails leaves its traceback in error.txt beside its job.json, and the next one still runs."""
    from infuse.operators.train.worker import main

    for path in paths:
        try:
            main([path])
        except Exception:
            (Path(path).parent / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Job, Path]]:
    """Every loss type's job, trained in one `accelerate launch`: {loss type: (job, sft model dir)}."""
    root = tmp_path_factory.mktemp("dpo-losses")
    base, sft = sft_model(root)
    jobs = {lt: dpo_job(root / lt, base, sft, lt) for lt in LOSS_OPTIONS}
    paths = []
    for job in jobs.values():
        path = Path(job.output_dir) / "job.json"
        path.parent.mkdir(parents=True)
        path.write_text(job.model_dump_json(indent=1), encoding="utf-8")
        paths.append(str(path))
    lines: list[str] = []
    launch([Path(__file__).stem, *paths], LaunchOptions(num_processes=1, env={"PYTHONPATH": str(TESTS)}), root,
           lines.append)
    return {lt: (job, sft) for lt, job in jobs.items()}


# ---- the independent computation -----------------------------------------------------------------------------------

def encode(tok, question: str, reply: str, eos: bool) -> tuple[list[int], int]:
    """(prompt + reply tokens by the chat template, prompt length). trl's CPO/ORPO trainers append <eos> to the
    completion (after the template's own end of turn); its DPOTrainer does not."""
    prompt = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    p = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    full = tok.apply_chat_template(prompt + [{"role": "assistant", "content": reply}], tokenize=True,
                                   return_dict=True)["input_ids"]
    assert full[:len(p)] == p and len(full) > len(p)
    if eos and full[-1] != tok.eos_token_id:
        full = full + [tok.eos_token_id]
    return full, len(p)


def token_logps(model, ids: list[int]) -> torch.Tensor:
    """log p(ids[t] | ids[:t]) for t = 1 .. len - 1, one sequence alone (no padding)."""
    x = torch.tensor([ids])
    with torch.inference_mode():
        logits = model(input_ids=x).logits[0, :-1].double()
    return torch.log_softmax(logits, -1).gather(-1, x[0, 1:, None])[:, 0]


def expected_loss(loss_type: str, policy, ref, tok) -> tuple[float, float]:
    """(the loss of the batch of all pairs, the mean policy log-prob of the chosen completions as trl logs it:
    summed for the DPO losses, per token for simpo and orpo)."""
    o = LOSS_OPTIONS[loss_type]
    beta = o["beta"]
    eos = loss_type in ("simpo", "orpo")
    per_pair, chosen_logged, nll_sum, nll_count = [], [], 0.0, 0
    for question, chosen, rejected in PAIRS:
        side = {}
        for name, reply in (("c", chosen), ("r", rejected)):
            ids, n_prompt = encode(tok, question, reply, eos)
            lp = token_logps(policy, ids)
            comp = lp[n_prompt - 1:]  # the completion tokens' log-probs
            side[name] = {"sum": comp.sum(), "avg": comp.mean(), "n": comp.numel(),
                          "ref": token_logps(ref, ids)[n_prompt - 1:].sum() if not eos else None}
            if name == "c":  # ORPO's NLL (as trl takes it): every chosen token after the first, prompt included
                nll_sum, nll_count = nll_sum - float(lp.sum()), nll_count + lp.numel()
        c, r = side["c"], side["r"]
        if loss_type == "sigmoid":
            per_pair.append(-F.logsigmoid(beta * ((c["sum"] - c["ref"]) - (r["sum"] - r["ref"]))))
        elif loss_type == "hinge":
            per_pair.append(torch.relu(1 - beta * ((c["sum"] - c["ref"]) - (r["sum"] - r["ref"]))))
        elif loss_type == "ipo":
            d_avg = (c["sum"] - c["ref"]) / c["n"] - (r["sum"] - r["ref"]) / r["n"]
            per_pair.append((d_avg - 1 / (2 * beta)) ** 2)
        elif loss_type == "simpo":
            per_pair.append(-F.logsigmoid(beta * (c["avg"] - r["avg"]) - o["simpo_gamma"]))
        elif loss_type == "orpo":
            log_odds = (c["avg"] - torch.log1p(-torch.exp(c["avg"]))) - (r["avg"] - torch.log1p(-torch.exp(r["avg"])))
            per_pair.append(-beta * F.logsigmoid(log_odds))
        chosen_logged.append(c["avg"] if eos else c["sum"])
    loss = float(torch.stack(per_pair).mean())
    if loss_type == "orpo":
        loss += nll_sum / nll_count
    return loss, float(torch.stack(chosen_logged).mean())


# ---- the test ------------------------------------------------------------------------------------------------------

def assert_logged_as_computed(loss_type: str, logged: dict[int, dict], work: Path, sft: Path) -> None:
    """The loss and chosen log-prob logged at steps 1 and 2 are the formula's, computed here with plain
    transformers: at step 1 the new adapter is zero (the policy is the SFT model), at step 2 it is checkpoint-1's."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(work / "final")
    ref = AutoModelForCausalLM.from_pretrained(sft, dtype=torch.float32).eval()
    step2 = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(sft, dtype=torch.float32),
                                      work / "checkpoints" / "checkpoint-1").eval()
    for step, policy in ((1, ref), (2, step2)):
        loss, chosen_logps = expected_loss(loss_type, policy, ref, tok)
        assert logged[step]["loss"] == pytest.approx(loss, rel=1e-4, abs=1e-5), (step, logged[step])
        assert logged[step]["logps/chosen"] == pytest.approx(chosen_logps, rel=1e-4, abs=1e-5), (step, logged[step])


@pytest.mark.parametrize("loss_type", list(LOSS_OPTIONS))
def test_each_loss_type_trains_with_its_own_formula(runs, loss_type):
    job, sft = runs[loss_type]
    work = Path(job.output_dir)
    if (work / "error.txt").is_file():
        pytest.fail(f"dpo {loss_type} failed:\n" + (work / "error.txt").read_text(encoding="utf-8"))
    res = json.loads((work / "result.json").read_text(encoding="utf-8"))
    assert res["dpo"]["loss_type"] == loss_type
    logged = {h["step"]: h for h in res["history"] if "loss" in h}
    assert sorted(logged) == [1, 2], res["history"]
    assert_logged_as_computed(loss_type, logged, work, sft)
    if loss_type in ("sigmoid", "ipo", "hinge"):
        assert logged[1]["loss"] == pytest.approx({"sigmoid": math.log(2), "hinge": 1.0, "ipo": 25.0}[loss_type])
        assert res["ref_check"]["pair_ids"], "the reference path was checked"
    else:
        assert res["ref_check"] == {}, "no reference model"
    if loss_type == "simpo":
        assert res["dpo"]["simpo_gamma"] == LOSS_OPTIONS["simpo"]["simpo_gamma"]
        assert logged[1]["nll_loss"] == 0.0, "SimPO has no behaviour-cloning term (cpo_alpha 0)"


class Launched(Exception):
    pass


@pytest.mark.parametrize("loss_type", ["simpo", "sigmoid"])
def test_the_dpo_step_hands_its_loss_options_to_the_worker(tmp_path, monkeypatch, loss_type):
    """The recipe's loss_type, beta and (simpo) simpo_gamma reach the worker's job as the trainer reads them."""
    from types import SimpleNamespace

    from infuse.tasks import dpo as step

    def launched(ctx, job, launch, desc):
        raise Launched(job)

    monkeypatch.setattr(step.training, "base_model", lambda ctx: (str(tmp_path / "base"), {}))
    monkeypatch.setattr(step.training, "write_inputs", lambda ctx, names: ({"pairs": "pairs.parquet"}, {}))
    monkeypatch.setattr(step.training, "train", launched)
    o = step.DpoOptions(enabled=True, loss_type=loss_type, beta=2.5, simpo_gamma=0.8)
    ctx = SimpleNamespace(options=o, cfg={"model": {}}, work_dir=lambda: tmp_path / "work",
                          input=lambda name: SimpleNamespace(rows=3, sha256="0" * 64),
                          input_dir=lambda name: tmp_path / "sft")
    with pytest.raises(Launched) as got:
        step.Dpo().run(ctx)
    extra = got.value.args[0].extra
    assert (extra["loss_type"], extra["beta"]) == (loss_type, 2.5)
    assert extra.get("simpo_gamma") == (0.8 if loss_type == "simpo" else None)
    assert step.DpoOptions().simpo_gamma == 0.5  # trl's default, and the README's


if __name__ == "__main__":
    run_jobs(sys.argv[1:])
