"""What StepContext and the Step base give every step: a cached work folder built atomically, the model inputs
in order, the recipe's model section for a step that uses one, and the GPU slot and tag by `uses_gpu(cfg)`;
and `infuse serve` finding the last model a run made."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import infuse.flows.steps  # noqa: F401  (the pipeline's steps, registered)
from infuse.flows.recipe import ModelOptions
from infuse.storage import ArtifactRef, ArtifactStore, RunManifest
from infuse.tasks.framework.prefect_task import step_task
from infuse.tasks.framework.step import Step, StepContext, StepOptions, get_step


class GpuOptions(StepOptions):
    backend: str = "openai"


class Scratch(Step):  # no name: not registered, so no recipe or other test sees it
    Options = GpuOptions

    def uses_gpu(self, cfg: dict[str, Any]) -> bool:
        return cfg.get("backend") == "vllm"


def context(tmp_path: Path, inputs: dict[str, ArtifactRef] | None = None) -> StepContext:
    step = Scratch()
    step.name = "scratch"
    return StepContext(step, "k1", ArtifactStore(str(tmp_path / "runs")), {}, inputs or {})


def test_cached_dir_builds_once_and_a_killed_build_leaves_nothing_to_reuse(tmp_path):
    ctx = context(tmp_path)
    calls: list[Path] = []

    def killed(folder: Path) -> None:
        (folder / "half.parquet").write_text("half")
        raise KeyboardInterrupt  # a kill in the middle of the build

    with pytest.raises(KeyboardInterrupt):
        ctx.cached_dir("data", killed)
    assert not (ctx.work_dir() / "data").exists()

    def build(folder: Path) -> None:
        calls.append(folder)
        (folder / "train.parquet").write_text("rows")

    first = ctx.cached_dir("data", build)
    assert first == ctx.work_dir() / "data" and sorted(p.name for p in first.iterdir()) == ["train.parquet"]
    assert calls[0] != first, "built beside it, then renamed into place"
    assert not list(ctx.work_dir().glob("data.*")), "the killed build's leftovers are gone"
    assert context(tmp_path).cached_dir("data", build) == first and len(calls) == 1, "a re-run builds nothing"


def _ref(step: str, name: str, kind: str) -> ArtifactRef:
    return ArtifactRef(step, name, "k", f"/x/{step}/{name}", "0" * 64, 1, "", kind)


def test_models_lists_the_model_inputs_in_the_order_the_graph_gave_them(tmp_path):
    ctx = context(tmp_path, {"chunks": _ref("dedup", "chunks", "table"), "cpt.model": _ref("cpt", "model", "model"),
                             "sft.model": _ref("sft", "model", "model"), "dpo.model": _ref("dpo", "model", "model"),
                             "preference.exports": _ref("preference", "exports", "report")})
    assert ctx.models() == ["cpt.model", "sft.model", "dpo.model"]


def test_a_step_that_uses_the_model_gets_the_recipe_model_section():
    model = ModelOptions(path="/models/base", attn="sdpa")
    for name in ("cpt", "sft", "dpo", "merge", "mix"):
        cls = get_step(name)
        recipe = SimpleNamespace(step_options=lambda _n, c=cls: c.Options(), model=model)
        cfg = cls().config(recipe)
        assert ("model" in cfg) == (name != "mix"), name
        if name != "mix":
            assert cfg["model"] == model.model_dump(mode="json")
            assert list(cfg)[-1] == "model", "after the step's own options, as before"


def test_the_gpu_tag_follows_uses_gpu_of_this_run_config():
    assert step_task(Scratch, {"backend": "vllm"}).tags == {"gpu"}
    assert step_task(Scratch, {"backend": "openai"}).tags == {"cpu"}
    assert step_task(Scratch).tags == {"cpu"}, "no config: the class's gpu"
    assert step_task(get_step("sft")).tags == {"gpu"} and step_task(get_step("sft"), {}).tags == {"gpu"}


def test_serve_finds_the_merge_of_the_model_asked_for_and_defaults_to_the_last(tmp_path):
    from infuse.deploy import serve as S

    store = ArtifactStore(str(tmp_path / "runs"))
    manifest = RunManifest(store, "run-1", recipe={})
    dirs = {}
    steps = {"sft": ("model", {}), "dpo": ("model", {"sft.model": "sft.model"}),
             "merge": ("merged", {"sft.model": "sft.model", "dpo.model": "dpo.model"})}  # merge reads models()
    for step, (name, inputs_from) in steps.items():
        with store.dir_writer(step, f"{step}-1", name) as out:
            (out.path / "card.json").write_text("{}")
        store.commit_step(step, f"{step}-1", {name: out.ref})
        manifest.record(step, {"key": f"{step}-1", "state": "Completed", "inputs_from": inputs_from,
                               "outputs": {name: out.ref.to_dict()}})
        dirs[step] = Path(out.ref.path).resolve()
    manifest.save("completed")
    assert S.last_model(store) == "dpo"
    assert S.find_model(store, "dpo", merged=True).path == dirs["merge"]
    with pytest.raises(S.ServeError, match=r"no committed merge of `sft.model`"):
        S.find_model(store, "sft", merged=True)  # the merge read sft's model too, but merged dpo's
    assert S.find_model(store, "sft").path == dirs["sft"]
    with pytest.raises(S.ServeError, match=r"no committed `cpt.model`.*turn cpt on \(steps.cpt.enabled: true\)"):
        S.find_model(store, "cpt")
