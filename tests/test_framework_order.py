"""The pipeline's order from the graph: staged steps by their stage, a step without one right after the last
step that makes its input; a stage or a name taken twice is an error naming both; models() wiring."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import infuse.flows.steps  # noqa: F401  (the pipeline's steps, registered)
from infuse.flows.graph import GraphError, build_graph
from infuse.flows.recipe import RecipeError, load_recipe, parse_recipe
from infuse.tasks.framework.step import REGISTRY, StepContractError, load_plugin, ordered_steps

REPO = Path(__file__).resolve().parent.parent
BUILTIN = ["parse", "chunk", "clean", "filter", "dedup", "synthesize", "qa_filter", "select", "mix", "cpt", "sft",
           "preference", "dpo", "merge", "evaluate"]

HEAD = "from infuse.tasks.framework.step import Step, model, models, table\n\n"


def plugin(path: Path, body: str) -> str:
    """A plug-in file of the given step classes; returns its path as a recipe names it."""
    path.write_text(HEAD + textwrap.dedent(body), encoding="utf-8")
    return str(path)


def names(plugins: list[str]) -> list[str]:
    return [c.name for c in ordered_steps(plugins)]


def test_the_built_in_steps_keep_their_order():
    assert [n for n in names([]) if n in BUILTIN] == BUILTIN


def test_a_step_without_a_stage_goes_right_after_the_last_step_that_makes_its_input(tmp_path):
    spec = plugin(tmp_path / "order_steps.py", """
        class Notes(Step):
            name = "ord_notes"  # reads qa: qa_filter and select write it, select (75) last
            inputs = ("qa",)
            outputs = {"notes": table()}

        class NotesUser(Step):
            name = "ord_notes_user"  # reads a plug-in's output: right after it
            inputs = ("notes",)
            outputs = {"summary": table()}

        class AfterSft(Step):
            name = "ord_after_sft"  # a named producer
            inputs = ("sft.model",)
            outputs = {"verdict": table()}

        class Source(Step):
            name = "ord_source"  # reads nothing a step makes: first
            outputs = {"rows": table()}

        class LastModel(Step):
            name = "ord_last_model"  # models(): after the last step that writes a model (merge)
            inputs = (models(),)
            outputs = {"served": table()}
        """)
    load_plugin(spec)
    order = names([spec])
    assert order[0] == "ord_source"
    at = order.index
    assert at("select") + 1 == at("ord_notes") and at("ord_notes") + 1 == at("ord_notes_user")
    assert at("ord_notes_user") + 1 == at("mix")
    assert at("sft") + 1 == at("ord_after_sft") and at("ord_after_sft") + 1 == at("preference")
    assert at("merge") + 1 == at("ord_last_model") and at("ord_last_model") + 1 == at("evaluate")
    assert [n for n in order if n in BUILTIN] == BUILTIN
    assert "ord_notes" not in names([]), "a plug-in's steps belong only to the recipes that name it"


def test_two_steps_with_one_stage_are_an_error_naming_both(tmp_path):
    spec = plugin(tmp_path / "stage_steps.py", """
        class Clash(Step):
            name = "ord_clash"
            stage = 80
            inputs = ("qa",)
            outputs = {"qa": table()}
        """)
    load_plugin(spec)
    with pytest.raises(StepContractError, match=r"steps mix \(infuse.tasks.mix.Mix\) and ord_clash .*stage 80"):
        ordered_steps([spec])
    with pytest.raises(RecipeError, match=r"plugins: steps mix .* and ord_clash .* both have stage 80"):
        parse_recipe({"input": "docs", "plugins": [spec]})


def test_two_classes_taking_one_name_are_an_error_but_a_reloaded_module_replaces_its_step(tmp_path):
    first = plugin(tmp_path / "name_a.py", """
        class Twin(Step):
            name = "ord_twin"
            inputs = ("chunks",)
            outputs = {"chunks": table()}
        """)
    load_plugin(first)
    old = REGISTRY["ord_twin"]
    second = plugin(tmp_path / "name_b.py", """
        class Other(Step):
            name = "ord_twin"
            outputs = {"x": table()}
        """)
    with pytest.raises(StepContractError, match=r"'ord_twin' is taken twice: by infuse_plugin_name_a_\w+\.Twin and "
                                                 r"by infuse_plugin_name_b_\w+\.Other"):
        load_plugin(second)
    assert REGISTRY["ord_twin"] is old
    with pytest.raises(RecipeError, match=r"plugins.0: cannot import .*StepContractError: step name 'ord_twin'"):
        parse_recipe({"input": "docs", "plugins": [second]})
    module = sys.modules[old.__module__]
    module.__spec__.loader.exec_module(module)  # the module run again (as a reload does): its step is replaced
    assert REGISTRY["ord_twin"] is not old and REGISTRY["ord_twin"].__qualname__ == "Twin"
    with pytest.raises(StepContractError, match="'sft' is taken twice"):
        load_plugin(plugin(tmp_path / "name_c.py", """
            class Sft(Step):
                name = "sft"
            """))


def _recipe(tmp_path: Path, **steps: dict) -> object:
    data = yaml.safe_load((REPO / "recipes" / "demo.yaml").read_text(encoding="utf-8"))
    data["input"] = str(REPO / "examples")
    for name, opts in steps.items():
        data.setdefault("steps", {}).setdefault(name, {}).update(opts)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_recipe(path)


def test_models_are_every_upstream_model_in_pipeline_order(tmp_path):
    nodes = {n.name: n for n in build_graph(_recipe(tmp_path, cpt={"enabled": True}))}
    assert list(nodes["merge"].inputs.items()) == [("cpt.model", ("cpt", "model")), ("sft.model", ("sft", "model")),
                                                  ("dpo.model", ("dpo", "model"))]
    nodes = {n.name: n for n in build_graph(_recipe(tmp_path, dpo={"enabled": False}))}
    assert list(nodes["merge"].inputs) == ["sft.model"]
    off = {s: {"enabled": False} for s in ("sft", "preference", "dpo")}
    with pytest.raises(GraphError, match="steps.merge: needs `models`, but no enabled step before it writes a model"):
        build_graph(_recipe(tmp_path, **off))
