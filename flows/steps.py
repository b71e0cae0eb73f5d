"""The pipeline's steps: one import line per step module. Each step registers itself by being
defined (see infuse.tasks.framework.step.Step); the recipe schema, `infuse steps`, `infuse validate` and
the flow are made from that registry. A step of your own can live outside this list: name its
file in the recipe's `plugins:`."""
from infuse.tasks import chunk, clean, dedup, parse, qa_filter, synthesize  # noqa: F401
from infuse.tasks import mix  # noqa: F401
from infuse.tasks import cpt, evaluate, merge, sft  # noqa: F401
from infuse.tasks import dpo, preference  # noqa: F401
from infuse.tasks import filter as filter_  # noqa: F401
from infuse.tasks import select as select_  # noqa: F401
from infuse.tasks.framework.step import REGISTRY, ordered_steps

__all__ = ["REGISTRY", "ordered_steps"]
