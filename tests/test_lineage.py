"""Run lineage: the manifest and the run-summary trace every output back to the input files, by sha256,
through table and model steps alike, on a first run and on a cached one."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cli_helpers import manifests, write_recipe

pytestmark = pytest.mark.usefixtures("prefect_server")

PLUGINS = [str(Path(__file__).with_name("plugin_steps.py")), str(Path(__file__).with_name("plugin_slow_model.py"))]
STEPS = {**{s: {"enabled": False} for s in ("clean", "filter", "dedup", "synthesize", "qa_filter")},
         "slow_model": {"files": 3, "delay_s": 0.0}}


def _summary(flow_run_id) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        (art,) = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["run-summary"])),
                                       flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return art.data


def test_manifest_and_run_summary_trace_outputs_to_input_files(tmp_path, examples_copy):
    from infuse.flows.lineage import files_digest, sinks, trace
    from infuse.flows.pipeline import infuse_pipeline

    recipe = write_recipe(tmp_path / "r.yaml", examples_copy, tmp_path / "runs", plugins=PLUGINS, steps=STEPS)
    for expected in ("Completed", "Cached"):
        state = infuse_pipeline(str(recipe), return_state=True)
        assert state.is_completed(), state
        steps = manifests(tmp_path / "runs")[-1]["steps"]
        assert {e["state"] for e in steps.values()} == {expected}

        # parse lists every file of the folder: the sha256 of the bytes it read, and what became of it
        files = {f["path"]: f for f in steps["parse"]["input_files"]}
        on_disk = sorted(p.relative_to(examples_copy).as_posix() for p in examples_copy.rglob("*") if p.is_file()
                         and not any(part.startswith(".") for part in p.relative_to(examples_copy).parts))
        assert sorted(files) == on_disk
        assert files["rejects/release_notes.rtf"]["fate"] == "unsupported_extension"
        assert files["rejects/encrypted_guide.pdf"]["fate"] == "encrypted"
        kept = [f for f in files.values() if f["fate"] == "kept"]
        assert len(kept) >= 10 and "input_files" not in steps["parse"]["stats"]
        for f in kept:
            assert f["sha256"] == hashlib.sha256((examples_copy / f["path"]).read_bytes()).hexdigest()

        # every input a step read is the output of the step it names, by sha256
        for step, e in steps.items():
            for name, src in e["inputs_from"].items():
                producer, artifact = src.split(".")
                assert e["inputs"][name] == steps[producer]["outputs"][artifact]["sha256"], (step, name)

        # the end of the run (a model directory) traced through every step to the folder
        assert sinks(steps) == ["slow_model.model"]
        node, chain = trace(steps, "slow_model.model"), []
        while node["from"]:
            chain.append(node["artifact"])
            (node,) = node["from"]
        assert chain + [node["artifact"]] == ["slow_model.model", "gate.chunks", "chunk.chunks", "parse.documents"]
        assert node["input_files"]["digest"] == files_digest(list(files.values()))

        md = _summary(state.state_details.flow_run_id)
        assert "## Lineage" in md
        model = steps["slow_model"]["outputs"]["model"]
        docs_sha = steps["parse"]["outputs"]["documents"]["sha256"][:12]
        assert f"model {model['rows']} `{model['sha256'][:12]}`" in md, md
        assert f"documents ← parse.documents `{docs_sha}`" in md
        assert f"- `slow_model.model` 4 files sha256 `{model['sha256'][:12]}` ({expected})" in md
        assert f"{len(files)} input files ({len(kept)} kept)" in md
