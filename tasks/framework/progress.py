"""Progress of long work: a bar in the terminal and a progress artifact in the Prefect UI.

The terminal bar is tqdm on stderr (done / total, rate, ETA) when stderr is a
terminal; a log line every `log_every_s` goes to the task log (the UI, the run's
log file), and to the terminal only when it has no bar. The UI artifact is
created once and updated at most every `ui_every_s`, so a fast loop costs
nothing. Outside a Prefect run only the terminal part is active.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Any

LOG_ONLY = {"infuse_terminal": False}  # `extra` of a log record that `infuse run` keeps off the terminal


def _in_prefect_run() -> bool:
    try:
        from prefect.context import FlowRunContext, TaskRunContext
    except ImportError:  # pragma: no cover
        return False
    return TaskRunContext.get() is not None or FlowRunContext.get() is not None


class Progress:
    def __init__(self, total: int | None, desc: str, unit: str = "items", key: str | None = None,
                 log: Any = None, ui_every_s: float = 2.0, log_every_s: float = 15.0) -> None:
        self.total, self.desc, self.unit, self.key = total, desc, unit, key
        self.done = 0
        self.info: dict[str, Any] = {}
        self.t0 = time.monotonic()
        self.log = log or logging.getLogger("infuse.progress")
        self.ui_every_s, self.log_every_s = ui_every_s, log_every_s
        self._last_ui = self._last_log = 0.0
        self._artifact: Any = None
        self._bar: Any = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=f" {unit}", dynamic_ncols=True, leave=True)
        if key and _in_prefect_run():
            try:
                from prefect.artifacts import create_progress_artifact

                self._artifact = create_progress_artifact(progress=0.0, key=key, description=f"{desc}: {unit} done")
            except Exception:  # the UI is a view; losing it must not stop the work
                self._artifact = None

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.t0
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if not self.total or not self.rate:
            return None
        return max(self.total - self.done, 0) / self.rate

    def line(self) -> str:
        of = f"/{self.total}" if self.total else ""
        eta = f", ETA {self.eta_s:.0f} s" if self.eta_s is not None else ""
        extra = "".join(f", {k} {v}" for k, v in self.info.items())
        return f"{self.desc}: {self.done}{of} {self.unit}, {self.rate:.2f} {self.unit}/s{eta}{extra}"

    def update(self, n: int = 1, **info: Any) -> None:
        self.done += n
        self.info.update(info)
        if self._bar is not None:
            self._bar.update(n)
            if info:
                self._bar.set_postfix(info, refresh=False)
        now = time.monotonic()
        if now - self._last_log >= self.log_every_s:
            self._last_log = now
            self.log.info(self.line(), **({"extra": LOG_ONLY} if self._bar is not None else {}))
        if self._artifact is not None and self.total and now - self._last_ui >= self.ui_every_s:
            self._last_ui = now
            self._push()

    def set(self, done: int, **info: Any) -> None:
        self.update(done - self.done, **info)

    def _push(self) -> None:
        try:
            from prefect.artifacts import update_progress_artifact

            pct = 100.0 * min(self.done / self.total, 1.0) if self.total else 0.0
            update_progress_artifact(self._artifact, progress=pct, description=self.line())
        except Exception:
            self._artifact = None

    def close(self) -> None:
        if self._artifact is not None and self.total:
            self._push()
        if self._bar is not None:
            self._bar.close()
        self.log.info(self.line())

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
