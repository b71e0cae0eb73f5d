"""Recipe validation: errors name the field and say what is allowed."""
from __future__ import annotations

import pytest

from infuse.flows.recipe import RecipeError, load_recipe, parse_recipe


def test_demo_recipe_is_valid():
    r = load_recipe("recipes/demo.yaml")
    assert r.input == "examples"
    assert r.steps.chunk.target_chars == 500


def test_unknown_key_lists_allowed_fields():
    with pytest.raises(RecipeError) as e:
        parse_recipe({"input": "x", "steps": {"chunk": {"target_char": 10}}})
    msg = str(e.value)
    assert "steps.chunk.target_char: unknown key" in msg
    assert "target_chars" in msg and "overlap_chars" in msg


def test_unknown_step_and_bad_type_and_missing_input():
    with pytest.raises(RecipeError) as e:
        parse_recipe({"steps": {"chunkk": {}, "parse": {"max_file_mb": "big"}}, "runner": {"kind": "spark"}})
    problems = e.value.problems
    assert any(p.startswith("input: Field required") for p in problems)
    assert any(p.startswith("steps.chunkk: unknown key") and "parse" in p for p in problems)
    assert any(p.startswith("steps.parse.max_file_mb:") and "'big'" in p for p in problems)
    assert any(p.startswith("runner.kind:") and "'local'" in p for p in problems)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(RecipeError, match="file not found"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)
