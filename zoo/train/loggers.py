"""Loggers: which ones a run uses (``--logger``), and the training events they receive.

A logger is a plugin that implements the training events of :mod:`zoo.registry.hookspecs`
(``on_fit_start(run)``, ``on_epoch_end(run, metrics)``, ``on_fit_end(run, metrics)``). The
trainer calls them on rank 0 through :class:`Events`, each plugin alone and in its own guard:
a plugin that raises gets one warning naming it and is not called again in that run; training
goes on, with the same metrics.

``--logger NAMES`` (the ``logger`` setting, comma-separated) chooses among:

- ``csv``: the run directory's ``metrics.csv``, always written where there is a run directory;
- the first-party loggers ``tensorboard`` (``<run dir>/tensorboard/``, needs ``zoo[tensorboard]``)
  and ``mlflow`` (the tracking URI of ``MLFLOW_TRACKING_URI``, else MLflow's default; needs
  ``zoo[mlflow]``), plugins of the ``zoo_loggers`` package that act only when chosen;
- any other plugin that implements a training event, by its plugin name: it is called on every
  run, and ``run.loggers`` tells it whether it was named.

A name no logger has, a first-party logger whose library is not installed, or one that writes
into the run directory of a run without one is a :class:`~zoo.errors.UsageError`, before any
work (:func:`check_loggers`).
"""

from __future__ import annotations

import importlib.util
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo._util.log import get_logger
from zoo._util.names import unknown_message
from zoo.errors import UsageError
from zoo.registry import hookspecs
from zoo.registry.plugins import call_plugins, plugin_records

__all__ = ["FIRST_PARTY", "IN_RUN_DIR", "Events", "Run", "check_loggers"]

log = get_logger(__name__)

#: First-party loggers besides ``csv``: name -> the module they need (the pip extra's name too).
FIRST_PARTY = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
#: Loggers that write into the run directory (a run without one cannot use them).
IN_RUN_DIR = ("csv", "tensorboard")


@dataclass
class Run:
    """One :meth:`~zoo.train.Trainer.fit`, as the training events see it.

    The same object is passed to every event of one fit: ``id`` keys a plugin's own state.

    Attributes:
        id: unique to this fit.
        run_dir: the run directory, or ``None`` (the Python API with ``out=None``).
        settings: every setting, as ``run.json`` records them (a copy).
        model, dataset, task: what is trained (resolved names).
        loggers: the names ``--logger`` chose (``()``: none).
        epoch: the epoch that just ended (``on_epoch_end``), else the last one done.
        start_epoch: the first epoch this fit trains (more than 1 when resumed).
        status: ``running``; at ``on_fit_end`` how it ended: ``finished``, ``stopped_early``,
            ``failed``, ``diverged``, ``interrupted`` or ``killed``.
    """

    run_dir: Path | None
    settings: dict[str, Any]
    model: str
    dataset: str
    task: str
    loggers: tuple[str, ...] = ()
    epoch: int = 0
    start_epoch: int = 1
    status: str = "running"
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


class Events:
    """Calls the training events of every loaded plugin for one run, each plugin guarded."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.failed: set[str] = set()

    def fit_start(self) -> None:
        """``on_fit_start(run)``."""
        self._emit("on_fit_start")

    def epoch_end(self, epoch: int, row: dict[str, Any]) -> None:
        """``on_epoch_end(run, metrics)`` with a copy of the epoch's row."""
        self.run.epoch = epoch
        self._emit("on_epoch_end", metrics=dict(row))

    def fit_end(self, status: str, metrics: dict[str, float] | None) -> None:
        """``on_fit_end(run, metrics)``; ``metrics`` ``{}`` when the fit did not finish."""
        self.run.status = status
        self._emit("on_fit_end", metrics=dict(metrics or {}))

    def _emit(self, hook: str, **kwargs: Any) -> None:
        for plugin, error in call_plugins(hook, skip=self.failed, run=self.run, **kwargs):
            self.failed.add(plugin)
            log.warning(
                "logger plugin %r failed in %s (%s): it is not called again in this run; "
                "training goes on",
                plugin,
                hook,
                error,
            )


def check_loggers(value: str | None, *, run_dir: bool) -> tuple[str, ...]:
    """The logger names ``value`` chooses, each checked; before any work.

    Args:
        value: the ``logger`` setting: comma-separated names, or ``None``.
        run_dir: whether the run has a run directory.

    Raises:
        UsageError: an unknown name (with close matches), a first-party logger whose library
            is missing (naming what to install) or whose plugin did not load, or a logger that
            writes into the run directory of a run without one.
    """
    if value is None:
        return ()
    if not isinstance(value, str):
        raise UsageError(f"logger must be comma-separated names, got {type(value).__name__}")
    names = tuple(dict.fromkeys(p.strip().lower() for p in value.split(",") if p.strip()))
    if not names:
        return ()
    # a first-party record wins a name a third party shares
    records = {r.name: r for r in sorted(plugin_records(), key=lambda r: r.first_party)}
    loaded = {
        name
        for name, r in records.items()
        if r.status == "ok" and any(h in r.hooks for h in hookspecs.EVENTS)
    }
    for name in names:
        if name in FIRST_PARTY:
            _check_first_party(name, records.get(name))
        elif name != "csv" and name not in loaded:
            known = ["csv", *sorted(FIRST_PARTY), *sorted(loaded - set(FIRST_PARTY))]
            raise UsageError(
                unknown_message(
                    "logger", name, known, otherwise=f"loggers here: {', '.join(known)}"
                )
            )
        if name in IN_RUN_DIR and not run_dir:
            raise UsageError(
                f"logger {name!r} writes into the run directory; give one (out=DIR, --out)"
            )
    return names


def _check_first_party(name: str, record: Any) -> None:
    module = FIRST_PARTY[name]
    if importlib.util.find_spec(module) is None:
        raise UsageError(f"logger {name!r} needs the {module} package: pip install 'zoo[{module}]'")
    if record is None or not record.first_party:
        raise UsageError(
            f"logger {name!r}: zoo's plugin {name!r} is not installed (see `zoo plugins`)"
        )
    if record.status != "ok":
        why = {
            "blocked": "is disabled by ZOO_DISABLE_PLUGINS",
            "failed": f"failed to load ({record.error})",
        }.get(record.status, record.status)
        raise UsageError(f"logger {name!r}: its plugin {why}")
