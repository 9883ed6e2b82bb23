"""The shared trainer: the canonical PyTorch loop, with everything around it made explicit.

Each step is the loop every PyTorch user writes (``model.train()``, forward, loss,
``optimizer.zero_grad()``, backward, ``optimizer.step()``): it is
:func:`zoo.runtime.step.train_step`, the one step the benchmark harness and ``zoo check`` run
too. Evaluation runs under ``model.eval()`` and ``torch.inference_mode()`` with model and data
on one device. Around it: device and precision selection, seeding, slicing batches for
in-memory data (``DataLoader`` otherwise), per-epoch metrics on train and test, early
stopping, a NaN/inf guard, checkpoints (safetensors + JSON) with exact resume, a run
directory, progress on stderr, the training events loggers receive (:mod:`zoo.train.loggers`)
and ``DistributedDataParallel`` under ``torchrun``.

The per-step cost is kept to the loop itself: the loss is kept on the device (no ``.item()``
per step); it is inspected only every few steps for progress and the NaN/inf guard.

Every setting is a field of :class:`~zoo.train.config.TrainConfig` (``trainer.config``; each also
reads as an attribute, ``trainer.lr``); what training has done so far is
:class:`~zoo.train.config.TrainState` (``trainer.state``), which the checkpoint stores and
``run.json`` is written from. :meth:`Trainer.resumed` continues a run with its recorded
settings, as ``zoo train --resume`` does.
"""

from __future__ import annotations

import inspect
import math
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from zoo import api
from zoo._util.jsonio import jsonable
from zoo._util.log import get_logger
from zoo.api import EVAL_BATCH_SIZE, num_classes_of, predict_model
from zoo.errors import IncompatibleError, UsageError, ZooError, one_line
from zoo.models import build_model, model_kwargs
from zoo.runtime import distributed
from zoo.runtime.batches import TensorBatches, make_batches
from zoo.runtime.device import resolve_device, synchronize
from zoo.runtime.distributed import env_world
from zoo.runtime.owndata import is_data_path
from zoo.runtime.precision import Precision
from zoo.runtime.step import evaluate_batches, smooth_targets, train_step
from zoo.runtime.threads import resolve_threads, use_threads
from zoo.tasks import contracts as tasks
from zoo.tasks.metrics import compute_metrics
from zoo.train.checkpoint import (
    Checkpoint,
    CorruptCheckpoint,
    capture_rng,
    check_fits,
    find_checkpoint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
    write_error,
)
from zoo.train.config import TrainConfig, TrainState
from zoo.train.curves import CurvesHelper
from zoo.train.finetune import (
    Start,
    freeze_backbone,
    frozen_norms_eval,
    load_start,
    no_classifier,
    recorded_init,
    resolve_start,
    trainable,
)
from zoo.train.localdata import LocalDataset, local_dataset
from zoo.train.loggers import Events, Run, check_loggers
from zoo.train.optim import (
    create_optimizer,
    optimizer_kwargs,
    resolve_optimizer,
    set_fused,
    sparse_gradients,
)
from zoo.train.progress import Progress
from zoo.train.recipes import find_recipe
from zoo.train.resume import (
    Change,
    check_world,
    compare_settings,
    recorded_world,
    refusal,
    resolve_config,
)
from zoo.train.rundir import (
    RUN_JSON,
    WEIGHTS,
    RunLock,
    claim_run_dir,
    find_run,
    recorded_settings,
    run_info,
    write_metrics_csv,
    write_outputs,
    write_run_json,
)
from zoo.train.schedule import Schedule

log = get_logger(__name__)

__all__ = [
    "FitResult",
    "Terminated",
    "Trainer",
    "lower_is_better",
    "monitor_key",
    "seed_everything",
]


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` returns."""

    model: nn.Module
    metrics: dict[str, float]  # final test metrics, including "loss"
    history: list[dict[str, Any]]  # one row per epoch
    seconds: float  # wall time of this fit() call
    run_dir: Path | None
    best_epoch: int | None = None
    stopped_early: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# -- settings ----------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def monitor_key(monitor: str | None, task: str, val: bool = False) -> str:
    """``loss`` -> ``val_loss`` (``test_loss`` without a val split); ``train_accuracy`` stays;
    anything else is a clear error."""
    names = ("loss", *tasks.TASKS[task].metrics)
    watched = "val" if val else "test"
    allowed = [f"{split}_{n}" for split in (watched, "train") for n in names]
    key = (monitor or "loss").strip().lower().replace("-", "_")
    if key in names:
        key = f"{watched}_{key}"
    if key not in allowed:
        raise UsageError(
            f"cannot monitor {monitor!r} for a {task} task; use one of {', '.join(allowed)}"
        )
    return key


def lower_is_better(key: str) -> bool:
    """Whether a smaller value of monitored ``key`` (``test_loss``, ``train_r2``) is better."""
    return key.split("_", 1)[1] in tasks.LOWER_IS_BETTER


# -- the trainer -------------------------------------------------------------------------------


class Trainer:
    """Train any compatible (model, dataset, loss) with the canonical loop.

    ``model`` is a registered name (built for ``dataset``) or an ``nn.Module``. ``dataset`` is
    a registered name, or your own data (:mod:`zoo.train.localdata`): the path of a CSV,
    ``.npz``, ``.npy`` or image folder (a ``str`` naming an existing path is data), an
    ``(X, y)`` pair of arrays or tensors, or a ``torch.utils.data.Dataset``. ``loss``
    defaults by task (regression ``mse``, binary ``bce-with-logits``, multiclass
    ``cross-entropy``). ``out=None`` writes nothing; otherwise ``out`` becomes a run
    directory. ``resume`` continues from a run directory's checkpoint with the settings given
    here (:meth:`resumed` reuses the run's recorded ones). The other keyword arguments are the
    fields of :class:`~zoo.train.config.TrainConfig` (``lr``, ``epochs``, ``batch_size``, ...;
    ``batch_size`` is per process: under ``torchrun`` with N processes a global batch holds
    ``N * batch_size``). Invalid settings are refused here, before any work, and so is a
    resume that changes a setting the checkpoint fixes (see :mod:`zoo.train.resume`); ``fit``
    claims ``out`` for this process (:meth:`claim_out`) and runs with ``threads`` intra-op
    threads (:func:`zoo.runtime.threads.use_threads`: torch's count is restored after).
    """

    def __init__(
        self,
        model: str | nn.Module,
        dataset: Any,
        loss: str | None = None,
        *,
        out: str | os.PathLike | None = None,
        resume: str | os.PathLike | None = None,
        **settings: Any,
    ):
        name = model if isinstance(model, str) else None
        label = _dataset_label(dataset)
        config = TrainConfig.from_kwargs(model=name, dataset=label, loss=loss, **settings)
        self.config = config
        self.recipe: Path | None = None  # the recipe the settings came from, kept with the run
        self._local: LocalDataset | None = None
        if isinstance(dataset, str) and not is_data_path(dataset):
            self.dataset_entry = api.get_entry("dataset", dataset)
            local_dataset(dataset, config)  # --target/--labels without data: refused
        else:
            config.validate(resuming=resume is not None)  # bad fractions: before reading
            self._local = local_dataset(dataset, config)
            config.dataset = self._local.name
            self.dataset_entry = self._local.entry
        self.dataset = config.dataset if self._local else self.dataset_entry.name
        self.task = self.dataset_entry.tasks[0]
        self.loss_entry = api.get_entry("loss", loss or tasks.TASKS[self.task].default_loss)
        self.loss = self.loss_entry.name
        self.expects = self.loss_entry.meta.get("expects", "logits")
        if isinstance(model, str):
            self.model_entry = api.get_entry("model", model)
            tasks.check_compatible(self.model_entry, self.dataset_entry, self.loss_entry)
            self.model_name = self.model_entry.name
            self._given_model = None
        else:
            self.model_entry = None
            self._given_model = model
            spec = getattr(model, "zoo_spec", None)
            self.model_name = spec.model if spec else type(model).__name__
            reason = tasks.incompatibility(
                _AnyModel(), self.dataset_entry, self.loss_entry
            )  # only the loss/task part applies to a ready-made module
            if reason:
                raise IncompatibleError(f"incompatible combination: {reason}")
        self.optimizer_name = config.optimizer.strip().lower()
        cls = resolve_optimizer(config.optimizer)
        self._optimizer_kwargs = optimizer_kwargs(
            cls, lr=config.lr, weight_decay=config.weight_decay, momentum=config.momentum
        )
        config.validate(resuming=resume is not None)
        self.init_record: dict[str, Any] | None = None  # run.json's ``init`` and ``freeze``
        self.freeze_record: dict[str, Any] | None = None
        self.has_val = self._local is not None and "val" in self._local.splits
        if self._local is None:
            self.has_val = "val" in (self.dataset_entry.meta.get("splits") or ())
        watching = config.monitor or config.patience or config.save_best
        self.monitor = monitor_key(config.monitor, self.task, self.has_val) if watching else None
        if config.label_smoothing and self.task == "regression":
            raise UsageError("--label-smoothing is for classification, not a regression")
        device, precision = config.device, config.precision
        self.device_spec = str(device)
        self.device = resolve_device(device)
        rank, world, local_rank = env_world()
        if world > 1 and self.device.type == "cuda" and ":" not in self.device_spec:
            self.device = resolve_device(f"cuda:{local_rank}")
        self.precision_plugin = Precision(precision, self.device)  # refuses fp16 off CUDA
        self.precision = self.precision_plugin.name
        resolve_threads(config.threads)  # a bad --threads or $OMP_NUM_THREADS: refused here
        self.resume = Path(resume) if resume is not None else None
        self.data_dir = _data_dir(config.data_dir)
        self.out = Path(out) if out is not None else None
        self.loggers = check_loggers(config.logger, run_dir=self.out is not None)
        self._claim: RunLock | None = None
        self._ready = False
        self.state = TrainState()
        self._changes: list[Change] = []
        self._checkpoint: Checkpoint | None = None
        if self.resume is not None and _never_checkpointed(self.resume):
            self.resume = None  # died before its first checkpoint: it starts again
        self.start = self._resolve_start(resuming=self.resume is not None)
        if self.resume is not None:
            self._changes = self._check_resume(self.resume)

    def __getattr__(self, name: str) -> Any:
        # every setting reads as an attribute too: ``trainer.lr`` is ``trainer.config.lr``
        config = self.__dict__.get("config")
        if config is not None and name in _SETTING_ATTRIBUTES:
            return getattr(config, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def history(self) -> list[dict[str, Any]]:
        """One row per finished epoch (``trainer.state.history``)."""
        return self.state.history

    @classmethod
    def from_config(
        cls,
        config: TrainConfig,
        *,
        model: nn.Module | None = None,
        out: str | os.PathLike | None = None,
        resume: str | os.PathLike | None = None,
        recipe: str | os.PathLike | None = None,
    ) -> Trainer:
        """A trainer for ``config``.

        Args:
            config: the settings (``config.model`` and ``config.dataset`` name what to train).
            model: a ready-made module to train instead of building ``config.model``.
            out, resume: as for :class:`Trainer`.
            recipe: the recipe the settings came from (a file, or a pretrained entry's name:
                :func:`~zoo.train.recipes.find_recipe`); the run directory keeps a copy.
        """
        settings = config.as_dict()
        name, dataset, loss = settings.pop("model"), settings.pop("dataset"), settings.pop("loss")
        trainer = cls(
            model if model is not None else name, dataset, loss, out=out, resume=resume, **settings
        )
        trainer.recipe = find_recipe(recipe) if recipe is not None else None
        return trainer

    @classmethod
    def from_recipe(cls, path: str | os.PathLike, **overrides: Any) -> Trainer:
        """A trainer from a TOML recipe (see :mod:`zoo.train.recipes`); ``overrides`` (settings,
        ``out`` and ``resume``) win. The run directory keeps a copy of the recipe."""
        out, resume = overrides.pop("out", None), overrides.pop("resume", None)
        config = resolve_config(recipe=path, overrides=overrides)
        for required in ("model", "dataset"):
            if getattr(config, required) in (None, ""):
                raise UsageError(f"recipe {path} does not name a {required}")
        return cls.from_config(config, out=out, resume=resume, recipe=path)

    @classmethod
    def resumed(
        cls,
        run_dir: str | os.PathLike,
        *,
        recipe: str | os.PathLike | None = None,
        out: str | os.PathLike | None = None,
        **overrides: Any,
    ) -> Trainer:
        """A trainer that continues ``run_dir`` from its last checkpoint, as
        ``zoo train --resume`` does: with the run's recorded settings, then ``recipe``'s, then
        ``overrides`` (see :mod:`zoo.train.resume`). ``epochs`` is the total to reach.

        Args:
            run_dir: the run directory (or its ``checkpoint/``).
            recipe: a recipe whose settings replace the recorded ones.
            out: where to write (default: ``run_dir`` itself).
            overrides: :class:`~zoo.train.config.TrainConfig` fields.
        """
        config = resolve_config(resume=run_dir, recipe=recipe, overrides=overrides)
        if config.model in (None, "") or config.dataset in (None, ""):
            raise UsageError(f"{run_dir} records no model and dataset; name them to resume it")
        out = find_run(run_dir) if out is None else out
        return cls.from_config(config, out=out, resume=run_dir, recipe=recipe)

    # -- setup --------------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """Every effective setting: what ``run.json`` records and a resumed run reuses.

        Returns:
            JSON-able: each :class:`~zoo.train.config.TrainConfig` field as this run uses it
            (resolved names, the model's full kwargs once built, the monitored key, the data
            dir actually read), plus ``task`` and the qualified ``entries``.
        """
        effective = {
            "model": self.model_name,
            "dataset": self.dataset,
            "loss": self.loss,
            "optimizer": self.optimizer_name,
            "device": self.device_spec,
            "precision": self.precision,
            "monitor": self.monitor,
            "model_kwargs": self._model_kwargs(),
            "data_dir": self.data_dir,
        }
        data = self._local.record if self._local is not None else None
        derived = {"task": self.task, "entries": self.qualnames(), "data": data}
        return jsonable({**self.config.as_dict(), **effective, **derived})

    def qualnames(self) -> dict[str, str]:
        """``plugin/name`` of the model, dataset and loss: what resume and evaluate resolve."""
        out = {"dataset": self.dataset_entry.qualname, "loss": self.loss_entry.qualname}
        if self._local is not None:
            del out["dataset"]  # no entry: the data is the user's (``settings()["data"]``)
        if self.model_entry is not None:
            out["model"] = self.model_entry.qualname
        return out

    def _model_kwargs(self) -> dict[str, Any]:
        """The model's full kwargs: those it was built with, else those it will be built with."""
        model = self.__dict__.get("model", self._given_model)
        spec = getattr(model, "zoo_spec", None)
        if spec is not None:
            return spec.kwargs
        if self.model_entry is not None:
            return model_kwargs(
                self.model_entry, self.dataset_entry, self.config.model_kwargs,
                base=self.start.kwargs if self.start is not None else None,
            )  # fmt: skip
        return self.config.model_kwargs

    def _resolve_start(self, *, resuming: bool) -> Start | None:
        """The weights ``pretrained``/``init`` name (metadata only; loaded by :meth:`build`),
        and ``freeze_backbone`` checked, before any work (:mod:`zoo.train.finetune`)."""
        config = self.config
        if config.pretrained is False:
            config.pretrained = None
        if self.model_entry is None:
            if config.pretrained is not None or config.init is not None:
                raise UsageError("--pretrained/--init need a registered model name, not a module")
            if config.freeze_backbone:
                raise UsageError(no_classifier(None))
            return None
        if config.freeze_backbone and not self.model_entry.meta.get("classifier"):
            raise UsageError(no_classifier(self.model_entry))
        try:
            start = resolve_start(self.model_entry, pretrained=config.pretrained, init=config.init)
        except ZooError:
            if not resuming:
                raise
            return None  # the checkpoint holds the weights; its run.json the model kwargs
        if start is not None and start.tag is not None and config.pretrained is not None:
            config.pretrained = start.tag  # ``true``: the default tag it means
        if start is not None and start.path is not None:
            config.init = str(start.path.resolve())  # recorded as the file it read
        return start

    def _fingerprint(self) -> dict[str, Any]:
        """The settings a checkpoint must match to be resumed (fields marked ``fingerprint``)."""
        s = self.settings()
        return {k: s[k] for k in TrainConfig.names(fingerprint=True)}

    def _check_resume(self, resume: Path) -> list[Change]:
        """Before any work: refuse a resume with nothing left to train, or one that changes a
        setting the checkpoint fixes (``resume="refuse"``); return the changes it applies."""
        self._checkpoint = load_checkpoint(resume)  # all of it checked, before any work
        where = self._checkpoint.path
        _check_epochs_left(where, self._checkpoint.epoch, self.config.epochs)
        record = self._checkpoint.trainer
        try:
            in_run_json = recorded_settings(find_run(resume))  # for checkpoints of zoo 0.1
        except UsageError:
            in_run_json = {}
        recorded = {
            **in_run_json, **(record.get("settings") or {}), **(record.get("fingerprint") or {}),
        }  # fmt: skip
        refused, applied = compare_settings(recorded, self.settings())
        if refused:
            raise UsageError(refusal(where, recorded, refused))
        try:
            run = find_run(resume)
        except UsageError:
            run = None
        check_world(where, recorded_world(record, run), env_world()[1])
        return applied

    def claim_out(self, *, unique: bool = False) -> Path | None:
        """Claim the run directory ``out`` for this process, if not yet (``fit`` does).

        A second process writing into it, or a directory holding another run, is a one-line
        error here, before any work (:func:`zoo.train.rundir.claim_run_dir`). Under ``torchrun``
        rank 0 alone writes and claims.

        Args:
            unique: ``out`` is a default name: take ``out-2``, ``out-3``, ... if it is taken.

        Returns:
            The directory claimed (``trainer.out``).
        """
        if self.out is None or self._claim is not None or env_world()[0] != 0:
            return self.out
        resuming = self.resume is not None and self.out.resolve() in (
            self.resume.resolve(), self.resume.resolve().parent,
        )  # fmt: skip
        self._claim = claim_run_dir(self.out, resuming=resuming, unique=unique)
        self.out = self._claim.path
        return self.out

    def _release_out(self) -> None:
        if self._claim is not None:
            self._claim.release()
            self._claim = None

    def build(self) -> None:
        """Build the model (seeded) and the loss, and try the loss on one sample-sized batch:
        what a bad ``model_kwargs`` or ``loss_kwargs`` fails at, as one line, before any data
        is read or any directory written (``zoo train`` calls it first; ``fit`` if not yet)."""
        if "loss_fn" in self.__dict__:
            return
        seed_everything(self.seed)
        if self._given_model is not None:
            model = self._given_model
        else:
            entry = self.model_entry  # resolved once: a shared bare name would be ambiguous
            kwargs = self._model_kwargs()
            try:
                if self._local is None:
                    model = build_model(entry, kwargs, dataset=self.dataset)
                else:  # the weights record no dataset name: the data is the user's
                    flat = tasks.flattens(entry, self.dataset_entry)
                    model = build_model(entry, kwargs, flatten=flat)
            except ZooError:
                raise
            except Exception as exc:
                raise UsageError(
                    f"model {entry.name!r} cannot be built with {jsonable(kwargs)}: "
                    f"{one_line(exc, typed=True)}"
                ) from exc
            if self.resume is not None:  # the checkpoint's weights replace the init's
                self.init_record = recorded_init(find_run(self.resume))
            elif self.start is not None:
                self.init_record = load_start(model, self.start, entry)
            if self.config.freeze_backbone:
                self.freeze_record = freeze_backbone(model, entry)
        _check_backend(self.config.compile)
        names = self.qualnames()
        loss_fn = api.create_loss(names["loss"], **self.loss_kwargs)
        _try_loss(loss_fn, self.loss_entry.name, self.loss_kwargs, self.task, self.expects,
                  num_classes_of(self.dataset_entry), self.config.label_smoothing)  # fmt: skip
        self.model, self.loss_fn = model, loss_fn

    def _setup(self) -> None:
        if self._ready:
            return

        t0 = time.perf_counter()
        self.dist = distributed.setup(self.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.build()
        self.model = self.model.to(self.device)
        self.loss_fn = self.loss_fn.to(self.device)
        self.num_classes = num_classes_of(self.dataset_entry)
        train, test = self._load_split("train"), self._load_split("test")
        self.generator = torch.Generator().manual_seed(self.seed)
        d = self.dist
        self.train_batches = make_batches(
            train, self.batch_size, device=self.device, shuffle=self.shuffle,
            generator=self.generator, rank=d.rank, world=d.world, workers=self.workers,
        )  # fmt: skip
        eval_bs = max(self.batch_size, EVAL_BATCH_SIZE)
        if isinstance(self.train_batches, TensorBatches):  # reuse the device copy
            train = (self.train_batches.X, self.train_batches.y)
        self.train_eval_batches = make_batches(
            train, eval_bs, device=self.device, workers=self.workers
        )
        self.test_batches = make_batches(test, eval_bs, device=self.device, workers=self.workers)
        self.val_batches = None
        if self.has_val:
            val = self._load_split("val")
            self.val_batches = make_batches(val, eval_bs, device=self.device, workers=self.workers)
        params = trainable(self.model) if self.freeze_backbone else self.model.parameters()
        self.optimizer = create_optimizer(
            self.optimizer_name, params, lr=self.lr,
            weight_decay=self.weight_decay, momentum=self.momentum,
            fused=self.fused and not sparse_gradients(self.model),
        )  # fmt: skip
        train_module: nn.Module = self.model
        if d.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            train_module = DistributedDataParallel(self.model, device_ids=ids)
        eval_module: nn.Module = self.model
        if self.compile:
            backend = self.compile if isinstance(self.compile, str) else "inductor"
            train_module = torch.compile(train_module, backend=backend)
            eval_module = train_module if not d.enabled else self.model
        self._train_module, self._eval_module = train_module, eval_module
        self.schedule: Schedule | None = None
        if self.config.scheduler or self.config.warmup_epochs:
            self.schedule = Schedule(
                self.config.scheduler, lr=self.lr, epochs=self.epochs,
                steps_per_epoch=-(-len(self.train_batches.sizes) // self.config.accumulate),
                warmup_epochs=self.config.warmup_epochs,
            )  # fmt: skip
        self.state = TrainState()
        if self.resume is not None:
            self._load_resume()
        self._check_same_start()
        self.setup_seconds = time.perf_counter() - t0
        self._ready = True

    def _load_split(self, split: str) -> Any:
        """One split of the data: the user's own, else the registered dataset's."""
        if self._local is not None:
            return self._local.load(split)
        return api.load_dataset(
            self.dataset_entry.qualname, split, data_dir=self.data_dir, **self.dataset_kwargs
        )

    def _load_resume(self) -> None:
        ckpt = self._checkpoint or load_checkpoint(self.resume)  # checked by _check_resume
        self._checkpoint = None  # its tensors go once they are loaded
        check_fits(ckpt, self.model, self.optimizer)
        try:
            self.model.load_state_dict(ckpt.model_state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            raise UsageError(
                f"resume: {ckpt.path} holds weights of another model ({' '.join(first[:2])})"
            ) from exc
        if ckpt.optimizer_state is not None:
            try:
                self.optimizer.load_state_dict(ckpt.optimizer_state)
            except (ValueError, KeyError, TypeError) as exc:
                raise CorruptCheckpoint(
                    f"{ckpt.path}: its optimizer state does not fit ({one_line(exc)})"
                ) from exc
            for group in self.optimizer.param_groups:  # this run's lr, weight decay, momentum
                group.update(self._optimizer_kwargs)  # (the state holds the checkpoint's)
            set_fused(self.optimizer, bool(self.optimizer.defaults.get("fused")))
        try:
            self.precision_plugin.load_state_dict(ckpt.scaler_state)
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise CorruptCheckpoint(f"{ckpt.path}: its GradScaler state ({one_line(exc)})") from exc
        if ckpt.rng is not None:
            restore_rng(ckpt.rng, self.generator)
        state = TrainState.from_checkpoint(ckpt.trainer, ckpt.epoch, str(ckpt.path))
        state.changes.extend(
            {"epoch": state.start_epoch, "setting": name, "from": old, "to": new}
            for name, old, new in self._changes
        )
        self.state = state
        if self.schedule is not None and state.scheduler:
            self.schedule.load_state_dict(state.scheduler)
        if any(name == "monitor" for name, _, _ in self._changes):
            self._replay_early()

    def _check_same_start(self) -> None:
        """Under torchrun, refuse processes that would start from different epochs (a resume
        whose checkpoint some machines cannot see): they would wait on each other forever."""
        d = self.dist
        if not d.enabled:
            return
        first = torch.tensor([self.state.start_epoch], device=self.device)
        low, high = distributed.all_min(first.clone(), d), distributed.all_max(first.clone(), d)
        if int(low) != int(high):
            raise ZooError(
                f"the {d.world} processes start from different epochs ({int(low)} to "
                f"{int(high)}): some cannot see the run's checkpoint; across machines, resume "
                f"from a run directory on a filesystem every node shares"
            )

    def _replay_early(self) -> None:
        """Early stopping's record for a monitor changed on resume: as if it had been watched
        from the first epoch (every epoch's metrics are in the history)."""
        state = self.state
        state.best, state.best_epoch, state.bad_epochs = None, None, 0
        for row in state.history:
            self._update_early(row["epoch"], row, keep=False)
        state.best_weights = None  # those epochs' weights are gone: the next best is kept

    # -- the loop -----------------------------------------------------------------------------

    def _train_epoch(self, epoch: int, progress: Any) -> tuple[float, int]:
        """One pass over the training batches; returns (mean training loss, samples seen)."""
        model, optimizer, loss_fn = self._train_module, self.optimizer, self.loss_fn
        task, expects, precision = self.task, self.expects, self.precision_plugin
        batches = self.train_batches
        sizes = batches.sizes
        steps = len(sizes)
        d = self.dist
        factors = self._ddp_factors(sizes) if d.enabled else None
        every = max(1, min(50, steps // 20))
        next_check, checked = every, 0
        losses: list[torch.Tensor] = []
        watch = not d.enabled
        config, schedule = self.config, self.schedule
        acc = config.accumulate
        running = config.train_metrics and not config.exact_train_metrics and not d.enabled
        record: list[tuple[torch.Tensor, torch.Tensor]] | None = [] if running else None
        self._running_train = record
        model.train()
        if config.freeze_backbone:
            frozen_norms_eval(self.model)
        for step, (x, y) in enumerate(batches, 1):
            start = step - 1 - (step - 1) % acc  # this accumulation group: batches start+1...
            group = min(acc, steps - start)
            if schedule is not None and step - 1 == start:
                schedule.apply(optimizer, epoch, start // acc)
            factor = 1.0 if factors is None else factors[step - 1]
            loss = train_step(
                model, x, y, loss_fn=loss_fn, optimizer=optimizer, precision=precision,
                task=task, expects=expects, loss_factor=factor / group,
                zero_grad=step - 1 == start, step=step == start + group,
                clip_grad=config.clip_grad, label_smoothing=config.label_smoothing,
                record=record,
            )  # fmt: skip
            losses.append(loss)
            if step == next_check:
                next_check += every
                if watch:
                    self._guard(losses, checked, epoch, steps)
                    checked = step
                progress.step(step, losses[-1].item(), step * batches.global_batch_size)
        if not losses:
            return float("nan"), 0
        stacked = torch.stack(losses).float()
        weights = torch.tensor(sizes, dtype=torch.float32, device=stacked.device)
        finite = torch.isfinite(stacked) | (weights == 0)
        first_bad = torch.where(
            finite, steps + 1, torch.arange(1, steps + 1, device=stacked.device)
        )
        counted = torch.where(weights > 0, stacked * weights, 0.0)  # an empty shard's loss is nan
        totals = torch.stack([counted.sum(), weights.sum()])
        bad = first_bad.min().reshape(1)
        distributed.all_sum(totals, d)
        distributed.all_min(bad, d)
        if int(bad.item()) <= steps:
            i = int(bad.item())
            local = stacked[i - 1].item() if not finite[i - 1] else float("nan")
            self._diverged(epoch, i, steps, local)
        return (totals[0] / totals[1]).item(), int(totals[1].item())

    def _ddp_factors(self, sizes: list[int]) -> list[float]:
        """Per-step loss weights that make DDP's gradient mean the mean over the global batch."""
        n, gb, world = (
            self.train_batches.num_samples,
            self.train_batches.global_batch_size,
            self.dist.world,
        )
        out = []
        for k, local in enumerate(sizes):
            global_n = min(gb, n - k * gb)
            out.append(local * world / global_n)
        return out

    def _guard(self, losses: list[torch.Tensor], start: int, epoch: int, steps: int) -> None:
        recent = torch.stack(losses[start:])
        bad = ~torch.isfinite(recent)
        if bad.any():
            i = int(bad.nonzero()[0, 0])
            self._diverged(epoch, start + i + 1, steps, recent[i].item())

    def _diverged(self, epoch: int, step: int, steps: int, value: float) -> None:
        what = "nan" if math.isnan(value) else ("inf" if math.isinf(value) else "not finite")
        message = (
            f"loss is {what} at epoch {epoch}, step {step}/{steps}: training diverged "
            f"(lr {self.lr}, precision {self.precision}); try a lower --lr"
        )
        self._diverged_message = message
        raise ZooError(message)

    def _evaluate_epoch(self) -> dict[str, float]:
        row: dict[str, float] = {}
        common = dict(
            task=self.task, loss_fn=self.loss_fn, expects=self.expects,
            num_classes=self.num_classes, precision=self.precision_plugin,
        )  # fmt: skip
        running = self.__dict__.get("_running_train")
        if running:  # the training pass's own outputs: no second pass
            output, target = torch.cat([o for o, _ in running]), torch.cat([t for _, t in running])
            self._running_train = None
            train = compute_metrics(self.task, output, target, self.num_classes)
            row.update({f"train_{k}": v for k, v in train.items()})
        elif self.train_metrics:  # exact: the epoch's final weights, a second pass
            train = evaluate_batches(self._eval_module, self.train_eval_batches, **common)
            row.update({f"train_{k}": v for k, v in train.items() if k != "loss"})
        split = "val" if self.val_batches is not None else "test"
        batches = self.val_batches if self.val_batches is not None else self.test_batches
        scores = evaluate_batches(self._eval_module, batches, **common)
        row.update({f"{split}_{k}": v for k, v in scores.items()})
        return row

    def _update_early(self, epoch: int, row: dict[str, Any], keep: bool = True) -> bool:
        """Track the monitored value (and, for ``save_best``, ``keep`` the weights of a new
        best); True when patience ran out."""
        if self.monitor is None:
            return False
        value = row.get(self.monitor)
        if value is None or not math.isfinite(value):
            return False
        state = self.state
        lower = lower_is_better(self.monitor)
        if state.best is None or (value < state.best if lower else value > state.best):
            state.best, state.best_epoch, state.bad_epochs = value, epoch, 0
            if keep and self.config.save_best:
                state.best_weights = {
                    k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()
                }
            return False
        state.bad_epochs += 1
        patience = self.config.patience
        return patience is not None and state.bad_epochs >= patience

    # -- public -------------------------------------------------------------------------------

    def fit(self) -> FitResult:
        """Train up to ``epochs`` (from the checkpoint's next epoch when resuming).

        The run directory is claimed first (:meth:`claim_out`) and let go at the end; the
        whole fit runs with ``threads`` intra-op threads, torch's own count restored after.

        Returns:
            The model, the final test metrics, the history and how training ended. With an
            ``out`` directory (rank 0 under ``torchrun``), the run directory is written too.
        """
        with use_threads(self.config.threads), _sigterm_interrupts():
            self.claim_out()
            try:
                return self._fit()
            finally:
                self._release_out()

    def _fit(self) -> FitResult:
        t_start = time.perf_counter()
        started = datetime.now(UTC).isoformat(timespec="seconds")
        self._setup()
        d = self.dist
        writer = d.is_main and self.out is not None
        config, state = self.config, self.state
        progress = Progress(config.epochs, quiet=config.quiet or not d.is_main)
        self._diverged_message = None
        self._last_weights = None
        self.curves_helper: CurvesHelper | None = None  # draws loss_curves.png beside training
        self.metrics_from: str | None = None
        self._run_clock = (started, t_start)
        if self.monitor is not None and self.monitor.startswith("test_"):
            log.warning(
                "%s watches the test split (this data has no val split; give --val-fraction "
                "for one): its final metrics are not an unbiased estimate",
                "--save-best" if config.save_best and not config.patience else "--patience",
            )
        self._checkpointed = len(self.history)  # rows the last checkpoint holds
        state.error = None
        stopped_early = False
        state.epoch = state.start_epoch
        events = self._events() if d.is_main else None  # loggers: rank 0 alone
        status, metrics = "failed", None
        try:
            if writer:
                self._write_run_json("running", started, t_start)
            if events:
                events.fit_start()
            for epoch in range(state.start_epoch, config.epochs + 1):
                state.epoch = epoch
                progress.start_epoch(epoch, len(self.train_batches))
                t0 = time.perf_counter()
                train_loss, samples = self._train_epoch(epoch, progress)
                synchronize(self.device)
                t1 = time.perf_counter()
                row: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss}
                row.update(self._evaluate_epoch())
                t2 = time.perf_counter()
                row.update(
                    lr=self.optimizer.param_groups[0]["lr"], seconds=t1 - t0, eval_seconds=t2 - t1,
                    samples_per_s=samples / max(t1 - t0, 1e-9),
                )  # fmt: skip
                self.history.append(row)
                if self.schedule is not None:
                    watched = "val" if self.has_val else "test"
                    self.schedule.end_epoch(row.get(f"{watched}_loss"))
                stop = self._update_early(epoch, row)
                if writer:
                    self._save_epoch(epoch, time.perf_counter() - t_start)
                    if config.plot and epoch == state.start_epoch:  # it says how long is left
                        left = (config.epochs - epoch) * (time.perf_counter() - t0)
                        self.curves_helper = CurvesHelper.start(seconds_left=left)
                progress.end_epoch(row, self._progress_keys())
                if events:
                    events.epoch_end(epoch, row)
                if stop:
                    stopped_early = True
                    progress.message(
                        f"early stopping: {self.monitor} has not improved for "
                        f"{config.patience} epochs (best {state.best:.4f} at epoch "
                        f"{state.best_epoch})"
                    )
                    break
            status = "stopped_early" if stopped_early else "finished"
            metrics = self._final_metrics()
            if writer:
                self._write_outputs(metrics, status)
        except ZooError as exc:
            state.error = str(exc)
            status = "diverged" if self._diverged_message else "failed"
            self._stopped(writer, status, exc)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
            status = getattr(exc, "status", "interrupted")
            self._stopped(writer, status, exc)
        except Exception as exc:
            state.error = one_line(exc, typed=True)
            self._stopped(writer, "failed", distributed.peer_failure(exc, d))
        finally:
            progress.close()
            if self.curves_helper is not None:
                self.curves_helper.close()
                self.curves_helper = None
            if events:
                done = status in ("finished", "stopped_early")
                events.fit_end(status, metrics if done else None)
        seconds = time.perf_counter() - t_start
        distributed.barrier(d)
        distributed.teardown(d)
        self._fit_seconds = seconds
        return FitResult(
            model=self.model, metrics=metrics, history=list(self.history), seconds=seconds,
            run_dir=self.out if writer else None, best_epoch=state.best_epoch,
            stopped_early=stopped_early, extra={"metrics_from": self.metrics_from},
        )  # fmt: skip

    def _events(self) -> Events:
        """The training events of this fit, for the loggers (:mod:`zoo.train.loggers`)."""
        run = Run(
            run_dir=self.out, settings=self.settings(), model=self.model_name,
            dataset=self.dataset, task=self.task, loggers=self.loggers,
            epoch=self.state.start_epoch - 1, start_epoch=self.state.start_epoch,
        )  # fmt: skip
        return Events(run)

    def evaluate(self, split: str = "test") -> dict[str, float]:
        """``{"loss", *metrics}`` of the current model on ``split`` (builds the model if needed)."""
        with use_threads(self.config.threads):
            return self._evaluate(split)

    def _evaluate(self, split: str) -> dict[str, float]:
        self._setup()
        if split == "test":
            batches = self.test_batches
        elif split == "train":
            batches = self.train_eval_batches
        else:
            data = self._load_split(split)
            batches = make_batches(data, max(self.batch_size, EVAL_BATCH_SIZE), device=self.device)
        return evaluate_batches(
            self._eval_module, batches, task=self.task, loss_fn=self.loss_fn,
            expects=self.expects, num_classes=self.num_classes, precision=self.precision_plugin,
        )  # fmt: skip

    def predict(self, X: torch.Tensor, raw: bool = False) -> torch.Tensor:
        """Predictions for ``X``: class labels (classification) or values (regression)."""
        with use_threads(self.config.threads):
            self._setup()
            return predict_model(
                self.model, X, task=self.task, batch_size=max(self.batch_size, EVAL_BATCH_SIZE),
                raw=raw,
            )  # fmt: skip

    # -- run directory ------------------------------------------------------------------------

    def _progress_keys(self) -> list[str]:
        primary = tasks.TASKS[self.task].primary_metric
        split = "val" if self.has_val else "test"
        keys = ["train_loss", f"train_{primary}", f"{split}_loss", f"{split}_{primary}"]
        return keys

    def _final_metrics(self) -> dict[str, float]:
        """The test split's metrics of the weights the run keeps: scored once, after training,
        where a val split or ``save_best`` chose them; else the last epoch's row."""
        best = self.state.best_weights
        if self.config.save_best and best is not None:
            self._last_weights = {k: v.detach().to("cpu", copy=True)
                                  for k, v in self.model.state_dict().items()}  # fmt: skip
            self.model.load_state_dict(best)
            self.metrics_from = f"test split, after training, best epoch {self.state.best_epoch}"
            return self.evaluate("test")
        self.metrics_from = "test split, after training"
        if self.history and not self.has_val:  # the last row describes the current weights
            self.metrics_from = "test split, last epoch (the split watched while training)"
            return {k[5:]: v for k, v in self.history[-1].items() if k.startswith("test_")}
        return self.evaluate("test")

    def _trainer_state(self, elapsed: float) -> dict[str, Any]:
        """What the checkpoint keeps of the trainer: the settings it was trained with (what a
        resume compares with), their fingerprint and :class:`TrainState`."""
        if self.schedule is not None:
            self.state.scheduler = self.schedule.state_dict()
        return {
            "settings": self.settings(), "fingerprint": self._fingerprint(),
            "world_size": self.dist.world, "torchrun_id": distributed.run_id(),
            **self.state.to_checkpoint(elapsed),
        }  # fmt: skip

    def _save_epoch(self, epoch: int, elapsed: float) -> None:
        with _sigint_deferred():  # Ctrl-C waits until the checkpoint is whole and in place
            self._write_checkpoint(epoch, elapsed)
            self._checkpointed = len(self.history)
        self._write_run_json("running", *self._run_clock)  # run.json follows the checkpoint

    def _write_outputs(self, metrics: dict[str, float], status: str) -> None:
        """The finished run's files (:func:`~zoo.train.rundir.write_outputs`), Ctrl-C held."""
        with _sigint_deferred():
            write_outputs(self, metrics, status, *self._run_clock)

    def _stopped(self, writer: bool, status: str, exc: BaseException) -> None:
        """Record in ``run.json`` how the run ended - as of its last checkpoint, whose epochs
        are what a resume continues from - then re-raise ``exc``. Best effort: when even that
        write fails (a full disk), a :class:`ZooError` says so on the same line."""
        if not writer:
            raise exc
        del self.history[self._checkpointed :]  # epochs after the last checkpoint are lost
        try:
            with _sigint_deferred():
                self._write_run_json(status, *self._run_clock)
        except Exception as failed:
            if isinstance(exc, KeyboardInterrupt):
                raise exc from None
            note = f"the failure could not be recorded in {self.out / RUN_JSON} either"
            raise ZooError(f"{one_line(exc)}; {note}") from failed
        raise exc

    def _write_checkpoint(self, epoch: int, elapsed: float) -> None:
        save_checkpoint(
            self.out, epoch=epoch, model=self.model, optimizer=self.optimizer,
            scaler=self.precision_plugin.scaler,
            rng=capture_rng(self.generator), trainer=self._trainer_state(elapsed),
        )  # fmt: skip
        write_metrics_csv(self.out, self.history)

    def _write_run_json(self, status: str, started: str, t_start: float) -> None:
        path = self.out / RUN_JSON
        try:
            write_run_json(self.out, run_info(self, status, started, t_start))
        except OSError as exc:
            raise write_error(path, exc) from exc


class Terminated(KeyboardInterrupt):
    """SIGTERM during :meth:`Trainer.fit`: handled like Ctrl-C (the run is recorded as
    ``killed`` as of its last checkpoint); ``signum`` says which signal it was."""

    status = "killed"

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_DEFERRED = ("SIGINT", "SIGTERM")


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold a SIGINT (Ctrl-C) or SIGTERM that arrives inside the block and deliver it on
    leaving."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    signums = [getattr(signal, name) for name in _DEFERRED if hasattr(signal, name)]
    previous = {n: signal.signal(n, lambda signum, frame: caught.append(signum)) for n in signums}
    try:
        yield
    finally:
        for n, handler in previous.items():
            signal.signal(n, handler)
    for signum in caught[:1]:
        handler = previous[signum]
        if callable(handler):
            handler(signum, None)
        elif handler == signal.SIG_DFL and signum == signal.SIGINT:
            raise KeyboardInterrupt
        elif handler == signal.SIG_DFL:
            signal.raise_signal(signum)


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (where nobody else handles it), so
    a terminated run is recorded and left resumable like an interrupted one."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    previous = signal.getsignal(signal.SIGTERM)
    if previous != signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_epochs_left(checkpoint: Path, done: int, epochs: int) -> None:
    """Refuse a resume with nothing left to train (``epochs`` is the total, not a count more)."""
    if epochs > done:
        return
    finished = (checkpoint.parent / WEIGHTS).is_file()
    if epochs < done or finished:
        raise UsageError(
            f"nothing to do: run already has {done} epoch{'s' if done != 1 else ''} "
            f"(--epochs is the total; pass more "
            f"than {done} to train further)"
        )


def _check_backend(compile: bool | str) -> None:
    """Refuse a ``compile`` backend torch does not have (before any work)."""
    if not isinstance(compile, str) or compile == "inductor":
        return
    from torch._dynamo import list_backends, lookup_backend

    try:
        lookup_backend(compile)
    except Exception:
        known = ", ".join(list_backends())
        raise UsageError(
            f"compile: unknown torch.compile backend {compile!r}; use {known}"
        ) from None


def _try_loss(
    loss_fn: Any,
    name: str,
    kwargs: dict[str, Any],
    task: str,
    expects: str,
    classes: int | None,
    smoothing: float = 0.0,
) -> None:
    """Call the loss once on a two-sample batch of the task's shape; an error is one line."""
    from zoo.tasks import metrics

    n = 2
    if task == "multiclass":
        output, target = torch.zeros(n, max(classes or 2, 2)), torch.zeros(n, dtype=torch.long)
    else:
        output, target = torch.zeros(n), torch.zeros(n)
    try:
        loss_fn(metrics.to_loss_input(expects, task, output), target)
    except Exception as exc:
        given = f" with {jsonable(kwargs)}" if kwargs else ""
        raise UsageError(f"loss {name!r}{given} fails: {one_line(exc, typed=True)}") from exc
    if smoothing:
        soft = smooth_targets(task, target, output, smoothing)
        try:
            loss_fn(metrics.to_loss_input(expects, task, output), soft)
        except Exception as exc:
            raise UsageError(
                f"loss {name!r} does not take smoothed targets (--label-smoothing): "
                f"{one_line(exc, typed=True)}"
            ) from exc


def _never_checkpointed(resume: Path) -> bool:
    """Whether ``resume`` is a run that died before its first checkpoint (so it starts again
    in its own directory rather than being a dead end)."""
    try:
        find_checkpoint(resume)
        return False
    except UsageError:
        pass
    try:
        run = find_run(resume)
    except UsageError:
        return False  # no run at all: resuming it says so
    return (run / RUN_JSON).is_file() and not (run / WEIGHTS).is_file()


class _AnyModel:
    """Stands in for a ready-made module in the compatibility check: serves every task/input."""

    name = "module"
    tasks = tuple(tasks.TASKS)
    input_kind = "any"
    meta: dict[str, Any] = {}


# Settings that read as trainer attributes (``trainer.lr``); the model, dataset, loss and
# optimizer attributes are what the trainer resolved and built from them.
_SETTING_ATTRIBUTES = frozenset(TrainConfig.names()) - {"model", "dataset", "loss", "optimizer"}


def _dataset_label(dataset: Any) -> str | None:
    """What the config records of a ``dataset`` argument before it is read: a name or path as
    given, ``arrays`` for ``(X, y)``, ``dataset`` for a torch ``Dataset``."""
    if dataset is None or isinstance(dataset, str):
        return dataset
    if isinstance(dataset, os.PathLike):
        return os.fspath(dataset)
    return "arrays" if isinstance(dataset, tuple | list) else "dataset"


def _data_dir(given: str | os.PathLike | None) -> str | None:
    """The data root a run reads (and records): ``given``, else ``$ZOO_DATA``; absolute."""
    chosen = given if given is not None else os.environ.get("ZOO_DATA")
    return str(Path(chosen).expanduser().resolve()) if chosen else None


def _init_signature() -> inspect.Signature:
    """``Trainer(model, dataset, loss=None, *, out=None, resume=None, <TrainConfig fields>)``:
    what ``help(zoo.Trainer)`` and editors show for ``**settings``."""
    pos, kw = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY
    hints = TrainConfig.hints()
    params = [
        inspect.Parameter("self", pos),
        inspect.Parameter("model", pos, annotation="str | nn.Module"),
        inspect.Parameter("dataset", pos, annotation="str | tuple | Dataset"),
        inspect.Parameter("loss", pos, default=None, annotation=hints["loss"]),
        inspect.Parameter("out", kw, default=None, annotation="str | os.PathLike | None"),
        inspect.Parameter("resume", kw, default=None, annotation="str | os.PathLike | None"),
    ]
    for name in TrainConfig.names():
        if name not in ("model", "dataset", "loss"):
            default = TrainConfig.default(name)
            params.append(inspect.Parameter(name, kw, default=default, annotation=hints[name]))
    return inspect.Signature(params)


Trainer.__init__.__signature__ = _init_signature()  # type: ignore[attr-defined]
