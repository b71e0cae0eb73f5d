"""What a step's code version covers: the code that computes its outputs, not how its work is shown.

A package of its own on sys.path shows the rules of module_closure: submodules imported through their
package count, the package's __init__ by its own source (its re-exports only when the package itself is
imported), a module that declares `PRESENTATION = True` not at all, and a package's data files do.
"""
from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

import infuse.flows.steps  # noqa: F401  (the pipeline's steps, registered)
from infuse.operators.common.base import code_version, module_closure
from infuse.tasks.framework.step import get_step, ordered_steps

FILES = {
    "__init__.py": "from {pkg}.heavy import HEAVY  # a re-export\n",
    "heavy.py": "HEAVY = 1\n",
    "core.py": "from {pkg} import helper\nfrom {pkg}.plots import draw\n\nVALUE = helper.X\n",
    "helper.py": "from . import sub\nX = sub.Y\n",
    "sub/__init__.py": "Y = 1\n",
    "sub/deep.py": "Z = 0\n",
    "plots.py": "PRESENTATION = True\n\nfrom {pkg} import plotonly\n\n\ndef draw():\n    return plotonly.W\n",
    "plotonly.py": "W = 2\n",
    "byname.py": "from {pkg} import HEAVY\n",
    "prompt.yaml": "system: hello\n",
}


@pytest.fixture
def pkg(tmp_path, monkeypatch) -> tuple[str, Path]:
    name = f"keytest_{uuid.uuid4().hex[:8]}"
    root = tmp_path / name
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text.format(pkg=name), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, root
    for mod in [m for m in sys.modules if m.startswith(name)]:
        del sys.modules[mod]


def test_submodules_count_a_package_by_its_own_source_and_presentation_not_at_all(pkg):
    name, root = pkg
    closure = module_closure((f"{name}.core",), (name,))
    assert closure == sorted([name, f"{name}.core", f"{name}.helper", f"{name}.sub"])
    # importing the package itself (a name it re-exports) brings in what its __init__ imports
    assert f"{name}.heavy" in module_closure((f"{name}.byname",), (name,))

    version = code_version(f"{name}.core", prefixes=(name,))
    for rel in ("heavy.py", "plots.py", "plotonly.py", "sub/deep.py"):
        with (root / rel).open("a", encoding="utf-8") as f:
            f.write("# reworded\n")
        assert code_version(f"{name}.core", prefixes=(name,)) == version, rel
    for rel in ("helper.py", "sub/__init__.py", "__init__.py", "prompt.yaml"):
        with (root / rel).open("a", encoding="utf-8") as f:
            f.write("# edited\n")
        new = code_version(f"{name}.core", prefixes=(name,))
        assert new != version, rel
        version = new


def test_a_step_key_covers_its_operators_and_the_framework_that_shapes_outputs_only():
    sft = set(get_step("sft").key_modules())
    assert {"infuse.tasks.sft", "infuse.tasks.framework.training", "infuse.operators.train.worker",
            "infuse.operators.train.sft", "infuse.operators.common.base"} <= sft
    shown = {"infuse.tasks.framework.progress", "infuse.tasks.framework.report", "infuse.tasks.framework.prefect_task",
             "infuse.tasks.framework.training_report", "infuse.tasks.framework.step", "infuse.tasks.framework.checks",
             "infuse.operators.common.input_files", "infuse.operators.common.file_checks", "infuse.operators.mix.check",
             "infuse.operators.preference.check", "infuse.operators.evaluate.check"}
    step_modules = {cls.__module__ for cls in ordered_steps()}
    for cls in ordered_steps():
        modules = set(cls.key_modules())
        assert not modules & shown, (cls.name, modules & shown)
        assert modules & step_modules == {cls.__module__}, f"{cls.name}: another step's module in its key"
    assert "infuse.tasks.framework.memo" in get_step("chunk").key_modules()
    merge = set(get_step("merge").key_modules())
    assert "infuse.tasks.framework.training" not in merge and "infuse.operators.train.launch" not in merge



def test_module_facts_kept_on_disk_serve_a_new_process_while_the_file_is_unchanged(pkg, tmp_path, monkeypatch):
    """A new process reads what each module imports from $INFUSE_CACHE/code/modules.json instead of parsing
    it, but only while the file's size and mtime are those recorded; an edited file is parsed again."""
    import json
    import os

    from infuse.operators.common import base

    name, root = pkg
    monkeypatch.setenv("INFUSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(base, "_SOURCE_FACTS", base._SourceFacts())
    assert f"{name}.helper" in module_closure((f"{name}.core",), (name,))
    facts_file = tmp_path / "cache" / "code" / "modules.json"
    facts = json.loads(facts_file.read_text())
    key = next(k for k in facts if k.startswith(f"{name}.core "))
    facts[key][2] = [[f"{name}.heavy", None]]  # recorded facts that differ from the source: proof they are read
    facts_file.write_text(json.dumps(facts))

    def fresh_process() -> list[str]:
        base._SOURCES.clear()
        monkeypatch.setattr(base, "_SOURCE_FACTS", base._SourceFacts())
        return module_closure((f"{name}.core",), (name,))

    assert f"{name}.heavy" in fresh_process() and f"{name}.helper" not in fresh_process()
    core = root / "core.py"
    core.write_text(core.read_text() + "# edited\n")
    st = core.stat()
    os.utime(core, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert f"{name}.helper" in fresh_process(), "an edited file is parsed again"
