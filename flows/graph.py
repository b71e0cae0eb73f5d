"""The pipeline as a DAG, wired by artifact name.

The enabled steps, in pipeline order. Each input resolves to a producer:
`chunks` to the nearest enabled step before it that writes `chunks`;
`sft.model` to that step only; models() to every model that an enabled step
before it writes (`cpt.model`, `sft.model`, ... in that order). A disabled
step is skipped over (dedup off: qa_filter reads filter's chunks); an optional
input with no producer is simply absent; a required one is an error that
`infuse validate` reports, except for a step that is on by default and was not
turned on by the recipe: with its input turned off upstream (synthesize off:
no `qa` for mix), it is skipped, with the reason in `skipped`.
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
    problems = []
    for cls in ordered_steps(recipe.plugins):
        opts = recipe.step_options(cls.name)
        if not opts.enabled:
            continue
        node = Node(cls())
        missing = _wire(node, nodes)
        if missing and "enabled" not in opts.model_fields_set:  # on by default, not asked for: skip it
            if skipped is not None:
                skipped[cls.name] = "; ".join(missing)
            continue
        problems += [f"steps.{cls.name}: {m}" for m in missing]
        nodes.append(node)
    if problems:
        raise GraphError(problems)
    return nodes


def _wire(node: Node, before: list[Node]) -> list[str]:
    """Resolve the node's inputs against the enabled steps before it; returns what it lacks."""
    missing = []
    for spec in type(node.step).input_specs():
        found = _every(spec, before) if spec.kind else _named(spec, before)
        node.inputs.update(found)
        if not found and not spec.optional:
            missing.append(f"needs `{spec.name}`, but {_why_missing(spec)}")
    return missing


def _named(spec: Input, before: list[Node]) -> dict[str, tuple[str, str]]:
    """`chunks`: the nearest step before that writes chunks; `sft.model`: that step, when enabled and writing it."""
    for node in reversed(before):
        if spec.artifact in type(node.step).outputs and spec.producer in (None, node.name):
            return {spec.name: (node.name, spec.artifact)}
    return {}


def _every(spec: Input, before: list[Node]) -> dict[str, tuple[str, str]]:
    """models(): every output of that kind that a step before writes, as `<step>.<output>`, in pipeline order."""
    return {f"{n.name}.{out}": (n.name, out) for n in before
            for out, o in type(n.step).outputs.items() if o.kind == spec.kind}


def _why_missing(spec: Input) -> str:
    if spec.kind:
        return f"no enabled step before it writes a {spec.kind}"
    if spec.producer:
        return f"step {spec.producer!r} is disabled or does not write {spec.artifact!r}"
    return f"no enabled step before it writes {spec.artifact!r}"


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


def check_files(recipe: Any, nodes: list[Node]) -> None:
    """Every enabled step's check() of its options (the files a recipe names: there, readable, each line one
    the step can read), as GraphError under the recipe keys. `infuse validate` and `infuse run` call it before
    a flow starts, and the flow calls it too: a deployment's scheduled run starts no CLI."""
    from infuse.flows.recipe import step_problem

    problems = [step_problem(n.name, n.step.Options, p) for n in nodes for p in n.step.check(n.step.config(recipe))]
    if problems:
        raise GraphError(problems)
