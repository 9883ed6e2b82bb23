"""Where a run's settings come from, lowest first: :class:`~zoo.train.config.TrainConfig`'s
defaults, the resumed run's recorded settings, a recipe, and explicit overrides.

``zoo train --resume RUN`` and :meth:`zoo.train.Trainer.resumed` both go through
:func:`resolve_config`, so a Python user continues a run with exactly the settings the command
would use:

- every setting comes back from ``run.json`` unless the recipe or an override sets it (not
  those whose ``resume`` is ``"session"``, such as ``quiet``: they are about this process);
- a ``dict`` override (``model_kwargs``, ``--model-arg``) updates the lower layers' dict
  instead of replacing it;
- the model, dataset and loss are built from the ``plugin/name`` the run recorded, so a plugin
  installed since that shares a bare name changes nothing;
- another model or dataset than the run's is refused (the checkpoint is theirs); another loss
  is a legitimate change of settings.

What the trainer then does with a value that differs from the checkpoint's is
:func:`compare_settings`: a setting whose ``resume`` is ``"refuse"`` (model, dataset, their
kwargs, optimizer, seed) is refused with one line before any work; any other takes effect from
the first resumed epoch and is recorded (``run.json``'s ``changes``). None is recorded and
ignored.

The number of processes is fixed too (:func:`check_world`): a run trained by N processes under
``torchrun`` resumes with N. When torchrun restarts its workers (``--max-restarts``), the same
``zoo train`` command continues the run in ``--out`` from its last checkpoint
(:func:`elastic_resume`: one written by the same torchrun job) instead of refusing a directory
that holds a run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from zoo import api
from zoo._util.jsonio import jsonable
from zoo._util.names import normalize_name
from zoo.errors import UnknownNameError, UsageError, ZooError
from zoo.runtime.distributed import run_id
from zoo.train.checkpoint import read_trainer_record
from zoo.train.config import TrainConfig
from zoo.train.recipes import load_recipe
from zoo.train.rundir import find_run, recorded_settings
from zoo.weights.source import read_run_json

__all__ = [
    "Change",
    "check_world",
    "compare_settings",
    "elastic_resume",
    "recorded_world",
    "refusal",
    "resolve_config",
]

Change = tuple[str, Any, Any]  # (setting, recorded value, new value)


def resolve_config(
    *,
    resume: str | os.PathLike | None = None,
    recipe: str | os.PathLike | None = None,
    overrides: Mapping[str, Any] | None = None,
    given_as: Literal["keyword", "flag"] = "keyword",
) -> TrainConfig:
    """The settings of a run: defaults < ``resume``'s recorded settings < ``recipe`` <
    ``overrides``.

    Args:
        resume: a run directory (or its ``checkpoint/``) whose recorded settings to reuse.
        recipe: a TOML recipe (:mod:`zoo.train.recipes`).
        overrides: settings given explicitly (:class:`TrainConfig` field names); an unknown
            name is a one-line :class:`UsageError`.
        given_as: how errors name an override: ``model='x'`` or, for the CLI, ``--model x``.

    Returns:
        The :class:`TrainConfig` (not yet checked for values; the trainer does that).
    """
    given = dict(overrides or {})
    TrainConfig.from_kwargs(**given)  # unknown names: the one-line error, before any reading
    layers: dict[str, Any] = {}
    saved: dict[str, Any] = {}
    if resume is not None:
        saved = TrainConfig.complete_record(recorded_settings(find_run(resume)))
        reused = set(TrainConfig.names()) - set(TrainConfig.names(resume="session"))
        layers.update((k, v) for k, v in saved.items() if k in reused)
    from_recipe: dict[str, Any] = {}
    if recipe is not None:
        from_recipe, _ = load_recipe(recipe)
        layers.update(from_recipe)
    for key, value in given.items():
        below = layers.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            layers[key] = {**below, **value}
        else:
            layers[key] = value
    own_data = bool(saved.get("data"))
    if own_data and "dataset" not in given and "dataset" not in from_recipe:
        how = "--dataset PATH" if given_as == "flag" else "dataset=PATH"
        raise UsageError(
            f"{find_run(resume)} trained on data of your own ({saved.get('dataset')}); "
            f"give it again to resume ({how}): a run never re-reads a file by itself"
        )
    if saved:
        for key in ("model", "dataset", "loss"):
            if key == "dataset" and own_data:
                continue  # a path: the checkpoint's fingerprint compares the resolved one
            if key in given:
                where = _describe(key, given[key], given_as)
            else:
                where = f"the recipe's {key} {layers.get(key)!r}"
            layers[key] = _resumed_name(key, layers.get(key), saved, where)
    return TrainConfig.from_kwargs(**layers)


def _describe(key: str, value: Any, given_as: str) -> str:
    if given_as == "flag":
        flag = TrainConfig.meta(key)["flag"] or "--" + key.replace("_", "-")
        return f"{flag} {value}"
    return f"{key}={value!r}"


def _resumed_name(key: str, name: Any, saved: dict[str, Any], where: str) -> Any:
    """The name to build for a resumed run: its recorded ``plugin/name`` unless another was
    asked for, which is refused for the model and dataset (the checkpoint is theirs)."""
    old, ref = saved.get(key), (saved.get("entries") or {}).get(key)
    if not isinstance(name, str) or not name or not old:
        return name  # nothing to compare (or a ready-made module from Python)
    plugin, _, bare = normalize_name(name).rpartition("/")
    same = bare == normalize_name(old) and (not plugin or not ref or f"{plugin}/{bare}" == ref)
    if not same:
        if key == "loss":
            return name  # a different loss is a legitimate change of settings
        raise UsageError(f"{where} conflicts with the resumed run ({old})")
    if ref and not plugin:
        try:
            api.get_entry(key, ref)
            return ref  # resolves even if another plugin now shares the bare name
        except UnknownNameError:
            return name
    return name


def compare_settings(
    recorded: Mapping[str, Any], planned: Mapping[str, Any]
) -> tuple[list[Change], list[Change]]:
    """What resuming a run recorded with ``recorded`` settings as ``planned`` changes.

    Args:
        recorded: the settings the checkpoint was trained with (JSON, as ``run.json`` has them).
        planned: the effective settings of the resumed run (:meth:`zoo.train.Trainer.settings`).

    Returns:
        ``(refused, applied)``: the ``(setting, recorded, new)`` of each field whose value
        differs, split by its ``resume`` metadata (``"session"`` fields are neither). A setting
        the record lacks (written by an older zoo) is no change, unless the setting declares
        what its absence meant (:meth:`TrainConfig.complete_record`).
    """
    refused: list[Change] = []
    applied: list[Change] = []
    recorded = TrainConfig.complete_record(recorded)
    for name in TrainConfig.names():
        policy = TrainConfig.meta(name)["resume"]
        if policy == "session" or name not in recorded or name not in planned:
            continue
        old, new = jsonable(recorded[name]), jsonable(planned[name])
        if old != new:
            (refused if policy == "refuse" else applied).append((name, old, new))
    return refused, applied


def refusal(where: str | os.PathLike, recorded: Mapping[str, Any], refused: list[Change]) -> str:
    """The one line refusing ``refused`` changes to the checkpoint at ``where``."""
    what = ", ".join(f"{name} ({old!r} -> {new!r})" for name, old, new in refused)
    return (
        f"resume: {where} is a checkpoint of {recorded.get('model')!r} on "
        f"{recorded.get('dataset')!r}; this run differs in {what}, which a resumed run cannot "
        f"change (its weights, optimizer state and random streams come from them); start a new "
        f"run instead"
    )


def recorded_world(record: Mapping[str, Any], run_dir: str | os.PathLike | None) -> int | None:
    """How many processes trained a checkpoint: its trainer record's ``world_size``, else (a
    checkpoint of an older zoo) ``run.json``'s ``device.world_size``; ``None`` when unknown."""
    world = record.get("world_size")
    if world is None and run_dir is not None:
        try:
            device = read_run_json(run_dir).get("device")
        except (ZooError, OSError, ValueError):
            return None
        world = device.get("world_size") if isinstance(device, dict) else None
    if isinstance(world, bool) or not isinstance(world, int) or world < 1:
        return None
    return world


def check_world(where: str | os.PathLike, recorded: int | None, world: int) -> None:
    """Refuse to resume a checkpoint trained by ``recorded`` processes with ``world`` of them:
    the global batch (``world * batch_size``) and each process's share of it depend on the
    count. One :class:`UsageError` line, before any work."""
    if recorded is None or recorded == world:
        return
    how = (
        "in one process (without torchrun)"
        if recorded == 1
        else f"with {recorded} processes (torchrun: nodes x --nproc-per-node = {recorded})"
    )
    raise UsageError(
        f"resume: {where} was trained by {_processes(recorded)} and this run has {world}; "
        f"resume it {how}: the global batch and each process's share of it depend on the count"
    )


def _processes(n: int) -> str:
    return "1 process" if n == 1 else f"{n} processes (torchrun world size {n})"


def elastic_resume(
    out: str | os.PathLike | None, resume: str | os.PathLike | None
) -> str | os.PathLike | None:
    """The run to resume: ``resume`` as given, except under torchrun when ``out`` holds a
    checkpoint written by this same torchrun job (``TORCHELASTIC_RUN_ID``, the ``--rdzv-id``):
    then ``out``, so the workers torchrun restarts (``--max-restarts``) continue from the last
    checkpoint instead of refusing their own run.

    The job id, not ``TORCHELASTIC_RESTART_COUNT``, decides: torchrun counts restarts per node
    (a node whose workers restart for another node's failure may still say 0), and a count
    would also take over a run that the first attempt refused as another's. Every process
    decides from the files it sees, so across machines the run directory must be on a
    filesystem they share (the trainer refuses processes that start from different epochs).
    """
    job = run_id()
    if out is None or job is None:
        return resume
    try:
        written_by = read_trainer_record(out).get("torchrun_id")
    except UsageError:  # nothing checkpointed yet (or no directory): as first launched
        return resume
    return out if written_by == job else resume
