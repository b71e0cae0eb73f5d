"""`infuse serve`: the model found in a run's manifest, vLLM's command line and its adapter checks, and a real
`transformers serve` answering through the openai client with the model's own greedy reply.

vLLM is the GPU extra and is not installed here: its command lines and the checks made before launching it are
tested; the server that runs for real is transformers serve, on a tiny config-built model taught four made-up
facts (in-process, a second or two), saved with infuse's Gemma template and end-of-turn generation config.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_models import FACTS, make_tiny_model

from infuse.deploy import serve as S
from infuse.operators.train import templates as T
from infuse.operators.train.card import write_card
from infuse.storage import ArtifactStore, RunManifest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("serve") / "base")


def save_with_template(model, out: Path, base: Path, card: dict) -> None:
    """What sft and merge write: weights (or adapter), tokenizer with the Gemma template, end-of-turn ids, card."""
    from transformers import AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(base)
    tpl = T.named("gemma", tok)
    T.install(tok, tpl).save_pretrained(out)
    model.save_pretrained(out)
    gen = GenerationConfig.from_pretrained(base)
    gen.eos_token_id = T.eot_ids(tok, tpl)
    gen.save_pretrained(out)
    write_card(out, {**card, "template": tpl.to_card()})


def commit(store: ArtifactStore, run_id: str, steps: dict[str, tuple[str, dict, callable]]) -> dict[str, Path]:
    """One run in `store`: each step's model output written by `fill(path)`, committed, recorded in a manifest."""
    manifest = RunManifest(store, run_id, recipe={})
    dirs = {}
    for step, (name, inputs_from, fill) in steps.items():
        key = f"{step}-{run_id}"
        with store.dir_writer(step, key, name) as out:
            fill(out.path)
        store.commit_step(step, key, {name: out.ref})
        manifest.record(step, {"key": key, "state": "Completed", "inputs_from": inputs_from,
                               "outputs": {name: out.ref.to_dict()}})
        dirs[step] = Path(out.ref.path)
    manifest.save("completed")
    return dirs


def adapter(base: Path, card_base: dict | None = None, **lora):
    """A real PEFT adapter of the tiny base, saved as sft saves it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    def fill(out: Path) -> None:
        cfg = LoraConfig(**{"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"], **lora})
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), cfg)
        save_with_template(model, out, base, {"kind": "sft", "method": "lora", "layout": "adapter",
                                              "base": card_base or {"path": str(base)}})
    return fill


def full_copy(base: Path, kind: str = "merge"):
    from transformers import AutoModelForCausalLM

    def fill(out: Path) -> None:
        save_with_template(AutoModelForCausalLM.from_pretrained(base), out, base,
                           {"kind": kind, "layout": "full", "merged_from": {"kind": "sft"}})
    return fill


# ---- finding the model ------------------------------------------------------------------------------------------

def test_the_newest_sft_dpo_and_their_merges_are_found_and_a_missing_dpo_is_a_clear_error(tmp_path, base):
    store = ArtifactStore(str(tmp_path / "runs"))
    old = commit(store, "run-1", {"sft": ("model", {}, adapter(base)),
                                  "merge": ("merged", {"model": "sft.model"}, full_copy(base))})
    with pytest.raises(S.ServeError, match=r"no committed `dpo.model`.*steps run: merge, sft.*steps.dpo.enabled"):
        S.find_model(store, "dpo")
    with pytest.raises(S.ServeError, match=r"no committed merge of `dpo.model`.*steps.merge.enabled"):
        S.find_model(store, "dpo", merged=True)
    time.sleep(0.01)
    new = commit(store, "run-2", {"dpo": ("model", {"model": "sft.model"}, adapter(base)),
                                  "merge_dpo": ("merged", {"model": "dpo.model"}, full_copy(base))})
    assert S.find_model(store, "sft").path == old["sft"].resolve()
    sft_merged = S.find_model(store, "sft", merged=True)
    assert (sft_merged.step, sft_merged.path, sft_merged.merged) == ("merge", old["merge"].resolve(), True)
    dpo = S.find_model(store, "dpo")
    assert (dpo.step, dpo.run_id, dpo.merged, dpo.name) == ("dpo", "run-2", False, "infuse-dpo")
    assert S.find_model(store, "dpo", merged=True).path == new["merge_dpo"].resolve()
    # a recipe file finds the same root; a folder that is no root is refused
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\ninput: {tmp_path}\nstorage: {tmp_path / 'runs'}\n", encoding="utf-8")
    assert S.find_model(S.open_store(recipe), "dpo").path == new["dpo"].resolve()
    with pytest.raises(S.ServeError, match="no manifests/"):
        S.open_store(tmp_path)


# ---- vLLM: command lines and what it would refuse -----------------------------------------------------------------

def test_vllm_serves_an_adapter_on_its_base_with_its_template_generation_config_and_rank(tmp_path, base):
    store = ArtifactStore(str(tmp_path / "runs"))
    dirs = commit(store, "run-1", {"sft": ("model", {}, adapter(base, r=12)),
                                   "merge": ("merged", {"model": "sft.model"}, full_copy(base))})
    lora = S.find_model(store, "sft")
    cmd = S.vllm_command(lora, "127.0.0.1", 8123)
    ad = str(dirs["sft"].resolve())
    assert cmd[:3] == ["vllm", "serve", str(base)]  # the base it was trained on, from its card
    flat = " ".join(cmd)
    assert f"--lora-modules infuse-sft={ad}" in flat and "--enable-lora" in cmd
    assert "--max-lora-rank 16" in flat  # r=12 rounded up to a rank vLLM accepts
    assert f"--chat-template {ad}/chat_template.jinja" in flat and f"--generation-config {ad}" in flat
    assert "--port 8123" in flat and "--host 127.0.0.1" in flat
    merged = S.find_model(store, "sft", merged=True)
    cmd = S.vllm_command(merged, "0.0.0.0", 8000)
    assert cmd[:3] == ["vllm", "serve", str(merged.path)] and "--enable-lora" not in cmd
    assert "--served-model-name infuse-sft-merged" in " ".join(cmd)
    assert S.max_lora_rank({"r": 8, "rank_pattern": {"q_proj": 40}}) == 64
    # the hybrid layout carries its own updated base
    hybrid = S.Served("sft", "sft", "r", lora.path, {**lora.card, "layout": "adapter+base"})
    assert S.base_dir(hybrid) == lora.path / "base"


@pytest.mark.parametrize("lora, why", [
    ({"use_dora": True}, "DoRA adapter"),
    ({"modules_to_save": ["embed_tokens"]}, "modules_to_save: embed_tokens"),
    ({"bias": "lora_only"}, "trains biases"),
])
def test_adapters_vllm_rejects_are_caught_before_launch_with_the_merged_model_as_the_way_out(tmp_path, base, lora,
                                                                                             why):
    store = ArtifactStore(str(tmp_path / "runs"))
    commit(store, "run-1", {"sft": ("model", {}, adapter(base, **lora))})
    with pytest.raises(S.ServeError, match=rf"vLLM cannot serve the sft adapter.*{why}.*--model sft --merged"):
        S.vllm_command(S.find_model(store, "sft"), "127.0.0.1", 8000)


def test_a_template_edited_after_training_or_an_adapter_on_cpu_is_refused(tmp_path, base):
    store = ArtifactStore(str(tmp_path / "runs"))
    dirs = commit(store, "run-1", {"sft": ("model", {}, adapter(base))})
    with pytest.raises(S.ServeError, match=r"needs a merged model.*pass --merged"):
        S.transformers_command(S.find_model(store, "sft"), "127.0.0.1", 8000)
    with pytest.raises(S.ServeError, match=r"no committed merge of `sft.model`"):
        S.plan(str(tmp_path / "runs"), engine="transformers")
    tpl = dirs["sft"] / "chat_template.jinja"
    tpl.write_text(tpl.read_text() + " ", encoding="utf-8")
    with pytest.raises(S.ServeError, match="not the one the model was trained with"):
        S.vllm_command(S.Served("sft", "sft", "r", dirs["sft"], json.loads((dirs["sft"] / "card.json").read_text())),
                       "127.0.0.1", 8000)


def test_the_cli_prints_the_command_and_curl_line_and_says_what_is_missing(tmp_path, base):
    from typer.testing import CliRunner

    from infuse.flows.cli import app

    store = ArtifactStore(str(tmp_path / "runs"))
    merged = commit(store, "run-1", {"merge": ("merged", {"model": "sft.model"}, full_copy(base))})["merge"].resolve()
    runner = CliRunner()
    ok = runner.invoke(app, ["serve", str(tmp_path / "runs"), "--engine", "transformers", "--port", "8123",
                             "--dry-run"])
    assert ok.exit_code == 0, ok.output
    assert f"serve --host 127.0.0.1 --port 8123 {merged} --continuous-batching --cb-block-size 32 " \
           f"--cb-num-blocks 256" in ok.output
    assert f"base URL: http://127.0.0.1:8123/v1   model: {merged}" in ok.output
    assert f"curl http://127.0.0.1:8123/v1/chat/completions" in ok.output and f'"model": "{merged}"' in ok.output
    dpo = runner.invoke(app, ["serve", str(tmp_path / "runs"), "--model", "dpo", "--engine", "transformers"])
    assert dpo.exit_code == 2 and "no committed `dpo.model`" in dpo.output and "steps.dpo.enabled" in dpo.output


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed: serve would launch it")
def test_the_cli_says_vllm_is_not_installed_on_the_cpu_install(tmp_path, base):
    """The CPU install has no vllm: `--engine vllm` is a clear word and exit code 2, not a traceback."""
    from typer.testing import CliRunner

    from infuse.flows.cli import app

    commit(ArtifactStore(str(tmp_path / "runs")), "run-1", {"merge": ("merged", {"model": "sft.model"},
                                                                        full_copy(base))})
    gpu = CliRunner().invoke(app, ["serve", str(tmp_path / "runs"), "--engine", "vllm"])
    assert gpu.exit_code == 2 and "vllm is not installed" in gpu.output, gpu.output


# ---- transformers serve, for real ------------------------------------------------------------------------------

def taught(base: Path):
    """The tiny base taught the four facts under the Gemma template (60 full steps, in-process), saved merged."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def fill(out: Path) -> None:
        tok = AutoTokenizer.from_pretrained(base)
        tpl = T.named("gemma", tok)
        rows = [tok.apply_chat_template([{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                                        chat_template=tpl.source, tokenize=True, return_dict=True)["input_ids"]
                for q, a in FACTS]
        n = max(map(len, rows))
        ids = torch.tensor([r + [tok.pad_token_id] * (n - len(r)) for r in rows])
        labels = torch.tensor([r + [-100] * (n - len(r)) for r in rows])
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(base)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(60):
            model(input_ids=ids, attention_mask=(labels != -100).long(), labels=labels).loss.backward()
            opt.step()
            opt.zero_grad()
        save_with_template(model, out, base, {"kind": "merge", "layout": "full", "merged_from": {"kind": "sft"}})
    return fill


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_transformers_serve_answers_through_the_openai_client_as_the_model_does_under_its_saved_template(tmp_path,
                                                                                                        base):
    """`infuse serve RUN` on CPU starts transformers serve on the merged model; a chat request through the openai
    client gets the model's own greedy reply under the template saved with it, ended by its end-of-turn token."""
    from openai import OpenAI
    from transformers import AutoModelForCausalLM, AutoTokenizer

    store = ArtifactStore(str(tmp_path / "runs"))
    merged_dir = commit(store, "run-1", {"sft": ("model", {}, adapter(base)),
                                         "merge": ("merged", {"model": "sft.model"}, taught(base))})["merge"].resolve()
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
    with log.open("w") as f:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "infuse"), "serve", str(tmp_path / "runs"),
                                 "--engine", "transformers", "--port", str(port)], stdout=f, stderr=subprocess.STDOUT,
                                env=env, cwd=tmp_path)
    try:
        base_url = model_name = None
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            text = log.read_text()
            m = re.search(r"base URL: (\S+)\s+model: (\S+)", text)
            if m:
                base_url, model_name = m.groups()
                try:
                    import urllib.request

                    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
            time.sleep(0.5)
        else:
            pytest.fail(f"the server did not come up:\n{log.read_text()}")
        text = log.read_text()
        assert model_name == str(merged_dir) and base_url == f"http://127.0.0.1:{port}/v1"
        assert f"curl {base_url}/chat/completions" in text and "chat template gemma" in text
        client = OpenAI(base_url=base_url, api_key="unused")
        assert [m.id for m in client.models.list().data] == [model_name]

        tok = AutoTokenizer.from_pretrained(merged_dir)
        model = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
        for question, answer in FACTS[:2]:
            msgs = [{"role": "user", "content": question}]
            reply = client.chat.completions.create(model=model_name, messages=msgs, max_tokens=24, temperature=0)
            enc = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            with torch.inference_mode():
                out = model.generate(**enc, max_new_tokens=24, do_sample=False)  # stops at <end_of_turn>
            own = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            assert reply.choices[0].message.content == own == answer
            assert reply.choices[0].finish_reason == "stop"  # the saved end-of-turn id ended it, not max_tokens
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
