"""The pipeline as a DAG, wired by artifact name.

The enabled steps, in stage order. Each input resolves to a producer: `chunks`
to the nearest enabled step before it that writes `chunks`; `sft.model` to that
step only. A disabled step is skipped over (dedup off: qa_filter reads
filter's chunks); an optional input with no producer is simply absent; a
required one is an error that `infuse validate` reports, except for a step that
is on by default and was not turned on by the recipe: with its input turned off
upstream (synthesize off: no `qa` for mix), it is skipped, with the reason in
`skipped`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from infuse.tasks.framework.step import Input, Step, ordered_steps


class GraphError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class Node:
    step: Step
    inputs: dict[str, tuple[str, str]] = field(default_factory=dict)  # input name -> (producer step, artifact)

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def deps(self) -> set[str]:
        return {producer for producer, _ in self.inputs.values()}


def build_graph(recipe: Any, skipped: dict[str, str] | None = None) -> list[Node]:
    """The enabled steps in order, each with its inputs resolved; GraphError lists what is missing.
    Steps on by default whose required inputs no enabled step makes go to `skipped` (name -> why)."""
    nodes: list[Node] = []
    latest: dict[str, str] = {}  # artifact name -> the last enabled step so far that writes it
    enabled: dict[str, Step] = {}
    problems = []
    for cls in ordered_steps(recipe.plugins):
        step = cls()
        opts = recipe.step_options(step.name)
        if not opts.enabled:
            continue
        node = Node(step)
        missing = []
        for spec in cls.input_specs():
            producer = _producer(spec, latest, enabled)
            if producer is not None:
                node.inputs[spec.name] = (producer, spec.artifact)
            elif not spec.optional:
                why = (f"step {spec.producer!r} is disabled or does not write {spec.artifact!r}" if spec.producer
                       else f"no enabled step before it writes {spec.artifact!r}")
                missing.append(f"needs `{spec.name}`, but {why}")
        if missing and "enabled" not in opts.model_fields_set:  # on by default, not asked for: skip it
            if skipped is not None:
                skipped[step.name] = "; ".join(missing)
            continue
        problems += [f"steps.{step.name}: {m}" for m in missing]
        nodes.append(node)
        enabled[step.name] = step
        for out in cls.outputs:
            latest[out] = step.name
    if problems:
        raise GraphError(problems)
    return nodes


def _producer(spec: Input, latest: dict[str, str], enabled: dict[str, Step]) -> str | None:
    if spec.producer is None:
        return latest.get(spec.artifact)
    step = enabled.get(spec.producer)
    return spec.producer if step is not None and spec.artifact in type(step).outputs else None


def descendants(nodes: list[Node], names: set[str]) -> set[str]:
    """The named steps and every step that reads, directly or not, what they write."""
    out = set(names)
    for node in nodes:  # in order, so one pass sees every path
        if node.deps & out:
            out.add(node.name)
    return out


def ancestors(nodes: list[Node], names: set[str]) -> set[str]:
    by_name = {n.name: n for n in nodes}
    out: set[str] = set()
    stack = [n for n in names if n in by_name]
    while stack:
        for dep in by_name[stack.pop()].deps:
            if dep not in out:
                out.add(dep)
                stack.append(dep)
    return out
