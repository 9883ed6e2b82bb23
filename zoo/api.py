"""The stable Python API: list, describe and create entries; evaluate and predict.

Listing reads only what plugins registered, so it never imports torch or a plugin's target.
:func:`evaluate` and :func:`predict` take a run directory, a weights file, a pretrained entry
or a model, and recover from the weights what the run was trained with (dataset, loss,
dataset kwargs, data dir, task), so a run is evaluated as it was trained.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo._util.jsonio import jsonable
from zoo._util.log import get_logger
from zoo._util.values import positive_int
from zoo.errors import IncompatibleError, UnknownNameError, UsageError, ZooError, short_repr
from zoo.models import build_model, model_kwargs
from zoo.registry.entries import Entry
from zoo.registry.plugins import get_registry, missing_reason, pinned_entry
from zoo.tasks import contracts as tasks
from zoo.tasks.contracts import accepted_kwargs

if TYPE_CHECKING:
    import numpy as np
    import torch

    from zoo.hub.entries import PretrainedEntry
    from zoo.weights.preprocess import Transform

__all__ = [
    "EVAL_BATCH_SIZE",
    "SPLITS",
    "check_batch_size",
    "check_model_fits",
    "create_loss",
    "create_model",
    "evaluate",
    "evaluate_model",
    "get_entry",
    "info",
    "list_datasets",
    "list_losses",
    "list_models",
    "list_pretrained",
    "load_dataset",
    "num_classes_of",
    "predict",
    "predict_model",
    "pretrained_entry",
    "resolve_weights",
    "shape_inputs",
    "transforms",
]

logger = get_logger(__name__)

SPLITS = ("train", "val", "test")
EVAL_BATCH_SIZE = 256


def list_models(pattern: str | list[str] | None = None, pretrained: bool = False) -> list[str]:
    """Registered model names matching ``pattern`` (fnmatch); with ``pretrained``, only those
    that have at least one pretrained entry."""
    registry = get_registry()
    names = registry.names("model", pattern)
    if pretrained:
        from zoo.hub.entries import model_entry
        from zoo.hub.index import all_entries

        have = {m.qualname for e in all_entries().values() if (m := model_entry(e)) is not None}
        names = [n for n in names if registry.get("model", n).qualname in have]
    return names


def list_losses(pattern: str | list[str] | None = None) -> list[str]:
    """Registered loss names matching ``pattern``."""
    return get_registry().names("loss", pattern)


def list_datasets(pattern: str | list[str] | None = None) -> list[str]:
    """Registered dataset names matching ``pattern``."""
    return get_registry().names("dataset", pattern)


def list_pretrained(pattern: str | list[str] | None = None) -> list[str]:
    """Pretrained entry names (``model.tag``) from every configured registry and plugin."""
    from zoo.hub import index as hub

    return hub.list_pretrained(pattern)


def get_entry(kind: str, name: str) -> Entry:
    """The registry entry a name resolves to (raises with close matches when unknown)."""
    return get_registry().get(kind, name)


def info(name: str) -> dict[str, Any]:
    """Describe what ``name`` means: a model, loss or dataset (bare, ``plugin/name`` or
    ``dist:plugin/name``; one per kind that has it) or a pretrained entry (``model.tag``,
    ``plugin/model.tag``)."""
    registry = get_registry()
    found = registry.find(name)
    if not found and "." in name:
        from zoo.hub import cache
        from zoo.hub import index as hub

        pretrained = hub.get_pretrained(name)
        out = pretrained.to_dict()
        pins = [cache.first_use(f) for f in pretrained.files if f.prefix_only]
        if any(pins):  # trust on first use: what the first download hashed to
            out["first_use"] = [p for p in pins if p]
        out.update(_card_info(pretrained))
        return out
    if not found:
        raise UnknownNameError(registry.unknown_message(name))
    for kind in {e.kind for e in found}:
        registry.get(kind, name)  # a bare name two third-party entries share: ambiguous
    return _describe(found[0]) if len(found) == 1 else {"entries": [_describe(e) for e in found]}


def _card_info(entry: Any) -> dict[str, Any]:
    """``card`` (the model card's header fields, or ``"no card"``) and ``card_file`` (its
    verified copy in the cache, fetched like the entry's other files) for :func:`info`."""
    from zoo.hub import cache
    from zoo.weights.card import read_card

    if entry.card is None:
        return {"card": "no card"}
    try:
        path = cache.fetch_file(entry.card, name=entry.name)
        fields, _ = read_card(path)
    except ZooError as exc:  # offline, unreachable, not zoo's subset: the rest still stands
        return {"card": f"not available: {exc}"}
    return {"card": fields, "card_file": str(path)}


def _describe(entry: Entry) -> dict[str, Any]:
    out = entry.to_dict()
    if entry.kind == "model":
        out["input_kind"] = entry.input_kind
        out["defaults"] = entry.defaults
        out["datasets"] = [
            d.name for d in get_registry().entries("dataset") if not tasks.incompatibility(entry, d)
        ]
        from zoo.hub import index as hub

        out["pretrained"] = hub.pretrained_for(entry)
    elif entry.kind == "loss":
        out["expects"] = entry.meta.get("expects", "logits")
    elif entry.kind == "dataset":
        out["input_kind"] = entry.input_kind
        out["input_shape"] = list(entry.meta["input_shape"])
        out["standard_kwargs"] = tasks.standard_kwargs(entry)
    return out


def create_model(
    name: str, pretrained: str | bool | None = None, *, dataset: str | None = None, **kwargs: Any
) -> torch.nn.Module:
    """Build a registered model.

    ``dataset`` fills ``in_features``/``in_channels``/``image_size``/``num_classes`` from that
    dataset (only those the model accepts); ``defaults`` and then ``kwargs`` override them.
    ``pretrained="tag"`` builds with the pretrained entry's kwargs and loads its weights
    (fetched and verified into the cache first): the entry ``NAME.tag`` published for exactly
    this model entry (``create_model("dup/mlp", pretrained="circles")`` is ``dup/mlp.circles``);
    an entry of that name for another model is refused with one line. ``pretrained=True``
    means the model's declared default entry (torchvision's ``DEFAULT``); an unknown tag gets
    that model's tags as close matches. A ``num_classes``, ``in_channels`` or ``image_size``
    other than the entry's fine-tunes: every tensor loads except a classifier (the model
    entry's ``classifier``) of another shape, re-initialised, and the first conv is adapted to
    ``in_channels`` (filters summed, or repeated), each said in a log line.
    """
    registry = get_registry()
    entry = registry.get("model", name)
    if pretrained is not None and pretrained is not False:
        from zoo.hub import cache
        from zoo.weights import files as weights

        found = pretrained_entry(entry, pretrained)
        path = cache.fetch_entry(found)
        if any(found.kwargs.get(k) != kwargs[k] for k in _HEAD_KWARGS if k in kwargs):
            return _fine_tune(entry, found, path, {**found.kwargs, **kwargs})
        return weights.build_for_file(
            entry, {**found.kwargs, **kwargs}, path, source=f"pretrained entry {found.name}",
            dataset=found.dataset,
        )  # fmt: skip
    data_entry = None
    if dataset is not None:
        data_entry = registry.get("dataset", dataset)
        tasks.check_compatible(entry, data_entry)
    return build_model(entry, model_kwargs(entry, data_entry, kwargs), dataset=dataset)


#: kwargs that, when they differ from a pretrained entry's, make :func:`create_model` fine-tune
_HEAD_KWARGS = ("num_classes", "in_channels", "image_size")


def _fine_tune(entry: Entry, found: Any, path: Path, kwargs: dict[str, Any]) -> torch.nn.Module:
    """``entry`` built with ``kwargs``, loaded with the weights at ``path`` except a classifier
    of another shape (re-initialised) and with its first conv adapted to ``in_channels``."""
    from zoo.weights.adapt import load_adapted

    model = build_model(entry, kwargs, dataset=found.dataset)
    load_adapted(
        model, path, classifier=entry.meta.get("classifier"),
        first_conv=entry.meta.get("first_conv"), source=f"pretrained entry {found.name}",
    )  # fmt: skip
    return model


def pretrained_entry(model: str | Entry, pretrained: str | bool = True) -> PretrainedEntry:
    """The pretrained entry ``create_model(model, pretrained=...)`` loads, found in the indexes
    (nothing is fetched): tag ``pretrained`` of exactly this model entry, ``True`` its declared
    default. An unknown tag gets the model's tags as close matches; an entry of that name
    published for another model is refused with one line."""
    from zoo.hub import index as hub
    from zoo.hub.entries import model_entry, qualified_name

    entry = model if isinstance(model, Entry) else get_registry().get("model", model)
    tag = hub.default_tag(entry) if pretrained is True else str(pretrained)
    found = _pretrained_of(entry, tag)
    if model_entry(found) is not entry:
        raise UsageError(
            f"pretrained entry {qualified_name(found)} holds weights for "
            f"{found.pin.describe()}, not for model {entry.qualname!r}"
        )
    return found


def _pretrained_of(entry: Entry, tag: str) -> Any:
    """The pretrained entry ``tag`` of model ``entry``; an unknown tag gets the model's tags."""
    from zoo._util.names import unknown_message
    from zoo.hub import index as hub

    name = f"{get_registry().name_of(entry)}.{tag}"
    try:
        return hub.get_pretrained(name)
    except UnknownNameError:
        mine = sorted(e.name for e in hub.model_tags(entry))
        if not mine:
            raise
        raise UnknownNameError(
            unknown_message("pretrained entry", name, mine, otherwise=f"its: {', '.join(mine)}")
        ) from None


def create_loss(name: str, **kwargs: Any) -> torch.nn.Module:
    """Build a registered loss module, called as ``loss(output, target)``."""
    entry = get_registry().get("loss", name)
    target = entry.load()
    try:
        return target(**_tensor_kwargs(kwargs))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UsageError(f"loss {entry.name!r}: {exc}") from exc


TENSOR_KWARGS = ("weight", "pos_weight")  # torch.nn losses take these as tensors


def _tensor_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Class weights given as numbers or lists (CLI, recipes, JSON) become float tensors."""
    if not any(k in TENSOR_KWARGS and not _is_tensor(v) for k, v in kwargs.items()):
        return kwargs
    import torch

    return {
        k: torch.as_tensor(v, dtype=torch.float32) if k in TENSOR_KWARGS and v is not None else v
        for k, v in kwargs.items()
    }


def _is_tensor(value: Any) -> bool:
    return value is None or type(value).__name__ == "Tensor"


def load_dataset(
    name: str, split: str = "train", *, data_dir: str | os.PathLike | None = None, **kwargs: Any
) -> Any:
    """Load one split: ``(X, y)`` tensors for in-memory datasets, else a ``Dataset``.

    Args:
        data_dir: root of local dataset files (what ``--data-dir`` and ``$ZOO_DATA`` name). It is
            passed as ``root=`` to a dataset whose target takes ``root`` and was not given one;
            datasets that read no files ignore it.
    """
    entry = get_registry().get("dataset", name)
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    target = entry.load()
    if (
        data_dir is not None
        and "root" not in kwargs
        and "root" in accepted_kwargs(target, {"root": None})
    ):
        kwargs["root"] = str(Path(data_dir).expanduser())
    try:
        return target(split, **kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"dataset {entry.name!r}: {exc}") from exc
    except OSError as exc:
        raise ZooError(f"dataset {entry.name!r}: {exc}") from exc


# ---------------------------------------------------------------- evaluate and predict


def _with_threads(fn: Any) -> Any:
    """Run ``fn`` with its ``threads`` keyword's intra-op threads (the one rule of
    :func:`zoo.runtime.threads.use_threads`); torch's own count is restored after the call."""
    import functools

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        from zoo.runtime.threads import use_threads

        with use_threads(kwargs.get("threads")):
            return fn(*args, **kwargs)

    return call


@_with_threads
def evaluate(
    run_or_weights_or_entry: str | os.PathLike[str] | torch.nn.Module,
    dataset: str | None = None,
    split: str = "test",
    *,
    loss: str | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    device: str = "cpu",
    dataset_kwargs: dict[str, Any] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
) -> dict[str, float]:
    """Evaluate a trained model on one split of a dataset, as ``zoo evaluate`` does.

    On the dataset it was trained on (the default), a run is evaluated as it was trained: with
    its recorded ``plugin/name`` dataset and loss and its dataset kwargs.

    Args:
        run_or_weights_or_entry: a run directory, a weights file, a pretrained entry
            (``tinyvgg.digits``, fetched into the cache) or a model (moved to ``device``).
        dataset: default the dataset the weights were trained on.
        loss: the loss to report; default the run's own on its own dataset, else the task's.
        dataset_kwargs: default the run's own on its own dataset (its split settings: options
            that name paths or cause I/O, such as ``root`` or ``download``, are never taken
            from a file; a warning names them), else none.
        data_dir: root of local dataset files (passed as ``root=``); default ``$ZOO_DATA`` (a
            run's recorded one is not applied: a warning says so).
        threads: intra-op CPU threads for the call (default ``$OMP_NUM_THREADS``, else the
            physical cores per process); torch's own count is restored after.

    Returns:
        ``{"loss", *the task's metrics}``.
    """
    from zoo.runtime.device import resolve_device

    check_batch_size(batch_size)
    if _is_model(run_or_weights_or_entry):
        model = run_or_weights_or_entry
        dataset = dataset or getattr(getattr(model, "zoo_spec", None), "dataset", None)
        if not dataset:
            raise UsageError("the model does not record its dataset; pass a dataset")
        return evaluate_model(
            model, dataset, split, batch_size=batch_size, device=device,
            dataset_kwargs=dataset_kwargs, loss=loss, data_dir=data_dir,
        )  # fmt: skip
    from zoo.weights import files as weights
    from zoo.weights import loading

    path = resolve_weights(run_or_weights_or_entry)
    meta = weights.read_metadata(path)
    train = _train_record(meta)
    from zoo.runtime.owndata import is_data_path

    if dataset is not None and is_data_path(dataset):
        return _evaluate_own_data(path, meta, dataset, split, loss, batch_size, device)
    own = dataset is None or dataset == meta.get("dataset")
    dataset = dataset or _recorded_dataset(meta, path)
    if not dataset:
        raise UsageError(f"{path} does not record its dataset; pass a dataset (--dataset)")
    if own:
        if dataset_kwargs is None:
            dataset_kwargs = _recorded_dataset_kwargs(
                train, path, data_dir_given=data_dir is not None
            )
        if loss is None:
            loss = _recorded_loss(meta, path)  # the loss it was trained with, if installed
    dev = resolve_device(device)
    model = loading.load(path, device=str(dev))
    return evaluate_model(
        model, dataset, split, batch_size=batch_size, device=str(dev),
        dataset_kwargs=dataset_kwargs, loss=loss, data_dir=data_dir,
    )  # fmt: skip


@_with_threads
def predict(
    run_or_weights_or_entry: str | os.PathLike[str] | torch.nn.Module,
    inputs: torch.Tensor | np.ndarray | Any,
    *,
    raw: bool = False,
    proba: bool = False,
    transform: bool = True,
    batch_size: int = EVAL_BATCH_SIZE,
    device: str = "cpu",
    threads: int | None = None,
) -> torch.Tensor:
    """Predict with a trained model on raw inputs, as ``zoo predict`` does.

    The task (class labels or values) comes from the dataset the weights were trained on, else
    from the model entry. Rows of flat features are reshaped to that dataset's input shape
    (``(N, 64)`` -> ``(N, 1, 8, 8)`` for ``digits``), then the transform recorded with the
    weights (:func:`transforms`: the dataset's standardisation) is applied; weights that record
    none take inputs as already transformed, with a warning. Class names: ``transforms(...)``.
    Where the dataset standardised its regression targets too (``diabetes``), the predicted
    values are turned back into the target's own units.

    Args:
        run_or_weights_or_entry: a run directory, a weights file, a pretrained entry
            (``tinyvgg.digits``, fetched into the cache) or a model (moved to ``device``).
        inputs: a tensor, array or nested list: one sample, or one per row. Arrays and lists
            of floats become float32.
        raw: the model's outputs (logits, values; for standardised targets, standardised
            values) instead of labels.
        proba: class probabilities: ``(N,)`` of the positive class for a binary task,
            ``(N, K)`` rows summing to 1 for a multiclass one.
        transform: ``False`` when ``inputs`` are already transformed (as ``load_dataset``
            returns them): nothing recorded is applied, so values stay in the units the
            model was trained on (``load_dataset``'s targets).
        threads: intra-op CPU threads for the call, as for :func:`evaluate`.

    Returns:
        Predictions on the CPU: labels for classification, values for regression.
    """
    import torch

    from zoo.runtime.device import resolve_device

    check_batch_size(batch_size)
    if raw and proba:
        raise UsageError("raw outputs and probabilities are two different outputs: give one")
    dev = resolve_device(device)
    if _is_model(run_or_weights_or_entry):
        model = run_or_weights_or_entry.to(dev)
        meta: dict[str, Any] = {}
        dataset = getattr(getattr(model, "zoo_spec", None), "dataset", None)
    else:
        from zoo.weights import files as weights
        from zoo.weights import loading

        path = resolve_weights(run_or_weights_or_entry)
        meta = weights.read_metadata(path)
        dataset = _recorded_dataset(meta)
        model = loading.load(path, device=str(dev))
    task, input_shape = _task_and_shape(model, dataset, meta)
    if task is None and not raw:
        logger.warning(
            "%s: the task is unknown (%s), so the predictions are the model's raw outputs "
            "(logits or values), not labels",
            _source_name(run_or_weights_or_entry, model), _why_no_task(model, meta),
        )  # fmt: skip
    X = inputs if isinstance(inputs, torch.Tensor) else torch.as_tensor(inputs)
    if not isinstance(inputs, torch.Tensor) and X.is_floating_point():
        X = X.to(torch.float32)
    X = shape_inputs(X, input_shape)
    recorded = transforms(model) if transform else None
    if recorded is not None:
        if not recorded.recorded and _declares_transform(dataset, meta):
            logger.warning(
                "%s records no input transform (written before zoo recorded one): inputs are "
                "taken as already transformed", _source_name(run_or_weights_or_entry, model),
            )  # fmt: skip
        X = recorded(X)
    if proba and task not in ("binary", "multiclass"):
        raise UsageError(f"probabilities need a classification task, not {task or 'unknown'}")
    try:
        out = predict_model(model, X, task=task, batch_size=batch_size, raw=raw or proba)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"the model cannot take inputs of shape {list(X.shape)}: {first}"
        ) from None
    if not proba:
        if task == "regression" and recorded is not None and not raw:
            if not recorded.target_recorded and _declares_transform(
                dataset, meta, "target_transform"
            ):
                logger.warning(
                    "%s records no target transform (written before zoo recorded one): the "
                    "values are in the standardised units it was trained on; `zoo export` it "
                    "again to record it", _source_name(run_or_weights_or_entry, model),
                )  # fmt: skip
            return recorded.inverse_target(out)  # in the target's own units
        return out
    if task == "multiclass":
        return out.float().softmax(dim=-1)
    return out.float().reshape(len(out), -1)[:, 0].sigmoid()


def transforms(
    run_or_weights_or_entry: str | os.PathLike[str] | torch.nn.Module,
) -> Transform:
    """The transform recorded with a model's weights, applied to raw inputs by calling it,
    with the class names (``.classes``, ``.names(labels)``), as torchvision's
    ``weights.transforms()``.

    Takes what :func:`predict` takes; for a model, what ``zoo.load`` kept on its ``zoo_spec``
    (a model built here: what the dataset it was built for declares). Nothing recorded: the identity
    (``.recorded`` is ``False``).
    """
    from zoo.weights.preprocess import Transform

    if _is_model(run_or_weights_or_entry):
        spec = getattr(run_or_weights_or_entry, "zoo_spec", None)
        kept = getattr(spec, "extra", {}).get("preprocessing")
        fresh = "source" not in getattr(spec, "extra", {})  # built here, not zoo.load-ed
        if kept is None and fresh and getattr(spec, "dataset", None):
            try:
                kept = get_entry("dataset", spec.dataset).meta
            except UsageError:
                kept = None
        return Transform.from_meta(kept or {})
    from zoo.weights.files import read_metadata

    return Transform.from_meta(read_metadata(resolve_weights(run_or_weights_or_entry)))


def _declares_transform(dataset: str | None, meta: dict[str, Any], key: str = "transform") -> bool:
    """Whether the data the weights were trained on had a transform (``key``: of the inputs,
    or ``target_transform``; the installed dataset declares one, or a run on your own data
    recorded one) that the weights do not carry."""
    data = _train_record(meta).get("data")
    if isinstance(data, dict):  # your own data: its inputs are standardised, never its targets
        return key == "transform" and bool(data.get("preprocessing"))
    try:
        return bool(dataset) and key in get_entry("dataset", dataset).meta
    except UsageError:
        return False


def resolve_weights(run_or_weights_or_entry: str | os.PathLike[str]) -> Path:
    """The weights file a ``RUN|WEIGHTS|ENTRY`` argument names.

    A run directory gives its ``model.safetensors``, a file itself; a name that is no file but
    a pretrained entry (``tinyvgg.digits``, ``vision/tinyvgg.digits``) is fetched into the cache
    first.
    """
    from zoo.hub.entries import ENTRY_NAME
    from zoo.weights.source import resolve_weights as resolve_path

    text = os.fspath(run_or_weights_or_entry)
    key = text.strip().lower()
    bare = key.rpartition("/")[2]  # a qualified entry: workflow/mlp.circles
    if not Path(text).exists() and ENTRY_NAME.match(bare) and not key.endswith(".safetensors"):
        from zoo.hub.index import fetch

        try:
            return fetch(key)
        except UnknownNameError as exc:
            raise UnknownNameError(
                f"{text} is neither a run directory nor a weights file; {exc}"
            ) from None
    return resolve_path(text)


def evaluate_model(
    model: torch.nn.Module,
    dataset: str,
    split: str = "test",
    *,
    batch_size: int = EVAL_BATCH_SIZE,
    device: str = "cpu",
    dataset_kwargs: dict[str, Any] | None = None,
    loss: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> dict[str, float]:
    """Metrics and loss (default: the task's) of ``model`` on one split of ``dataset``.

    The model is moved to ``device``; no setting is recovered from anywhere (see
    :func:`evaluate` for that).

    Returns:
        ``{"loss", *the task's metrics}``.
    """
    from zoo.runtime.batches import make_batches
    from zoo.runtime.device import resolve_device
    from zoo.runtime.step import evaluate_batches

    check_batch_size(batch_size)
    entry = get_entry("dataset", dataset)
    task = entry.tasks[0]
    check_model_fits(model, entry.qualname)
    loss_entry = get_entry("loss", loss or tasks.TASKS[task].default_loss)
    if task not in loss_entry.tasks:
        raise IncompatibleError(f"loss {loss_entry.name!r} does not serve {task} ({entry.name!r})")
    dev = resolve_device(device)
    model.to(dev)
    data = load_dataset(entry.qualname, split, data_dir=data_dir, **(dataset_kwargs or {}))
    batches = make_batches(data, batch_size, device=dev)
    loss_fn = create_loss(loss_entry.qualname).to(dev)
    return evaluate_batches(
        model, batches, task=task, loss_fn=loss_fn,
        expects=loss_entry.meta.get("expects", "logits"), num_classes=num_classes_of(entry),
    )  # fmt: skip


def _evaluate_own_data(
    path: Path,
    meta: dict[str, Any],
    data: str | os.PathLike[str],
    split: str,
    loss: str | None,
    batch_size: int,
    device: str,
) -> dict[str, float]:
    """Evaluate weights trained on the user's data on ``data`` (a path the user gave again),
    split and standardised as the run recorded (:func:`zoo.runtime.owndata.recorded_split`)."""
    from zoo.runtime.batches import make_batches
    from zoo.runtime.device import resolve_device
    from zoo.runtime.owndata import recorded_split
    from zoo.runtime.step import evaluate_batches
    from zoo.weights import loading

    train = _train_record(meta)
    record, task = train.get("data"), train.get("task")
    if not isinstance(record, dict) or task not in tasks.TASKS:
        raise UsageError(f"{path} was not trained on data of your own; name a registered dataset")
    X, y = recorded_split(data, record, task, split)
    loss_entry = get_entry(
        "loss", loss or _recorded_loss(meta, path) or tasks.TASKS[task].default_loss
    )
    dev = resolve_device(device)
    model = loading.load(path, device=str(dev))
    classes = record.get("classes")
    return evaluate_batches(
        model, make_batches((X, y), batch_size, device=dev), task=task,
        loss_fn=create_loss(loss_entry.qualname).to(dev),
        expects=loss_entry.meta.get("expects", "logits"),
        num_classes=len(classes) if task == "multiclass" and classes else None,
    )  # fmt: skip


def predict_model(
    model: torch.nn.Module,
    X: torch.Tensor,
    *,
    task: str | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    raw: bool = False,
) -> torch.Tensor:
    """Predictions for ``X`` on the model's device, under eval + inference mode, on the CPU.

    Classification gives class labels, regression values; ``raw`` (or an unknown task) gives
    the model's outputs.
    """
    import torch

    from zoo.runtime.step import predict_outputs
    from zoo.tasks import metrics

    check_batch_size(batch_size)
    if not len(X):
        return torch.empty(0)
    out = predict_outputs(model, X, batch_size=batch_size)
    if raw or task is None:
        return out.cpu()
    if task != "multiclass" and out.dim() == 2 and out.shape[-1] == 1:
        out = out.squeeze(-1)
    return metrics.predictions(task, out).cpu()


def check_model_fits(model: torch.nn.Module, dataset: str) -> None:
    """Refuse a model built for other inputs/outputs than ``dataset`` gives (one-line error)."""
    spec = getattr(model, "zoo_spec", None)
    if spec is None:
        return
    entry = get_entry("dataset", dataset)
    try:
        model_entry = get_entry("model", f"{spec.plugin}/{spec.model}")
    except ZooError:
        model_entry = None
    if model_entry is not None:
        tasks.check_compatible(model_entry, entry)
    for key, value in tasks.standard_kwargs(entry).items():
        have = spec.kwargs.get(key)
        if have is not None and jsonable(have) != jsonable(value):
            raise IncompatibleError(
                f"model {spec.model!r} was built with {key}={jsonable(have)} but dataset "
                f"{entry.name!r} needs {key}={jsonable(value)}"
            )


def num_classes_of(entry: Entry) -> int | None:
    """The class count of a multiclass dataset entry (``None`` for other tasks)."""
    return entry.meta.get("num_classes") if entry.tasks[0] == "multiclass" else None


def check_batch_size(batch_size: Any) -> None:
    """Refuse a batch size that is not a positive integer (one message everywhere)."""
    positive_int(batch_size, "batch size")


def shape_inputs(X: torch.Tensor, input_shape: tuple[int, ...] | None) -> torch.Tensor:
    """Reshape flat rows to the dataset's input shape: ``(N, 64)`` -> ``(N, 1, 8, 8)``.

    One unbatched sample gets its batch dimension; anything that does not fit is a one-line
    :class:`~zoo.errors.UsageError`.
    """
    if input_shape is None:
        return X
    shape = tuple(input_shape)
    size = math.prod(shape)
    if tuple(X.shape[1:]) == shape:
        return X
    if X.dim() == len(shape) and tuple(X.shape) == shape:
        return X.unsqueeze(0)  # one sample
    if X.numel() % size == 0 and (X.dim() == 1 or math.prod(X.shape[1:]) == size):
        return X.reshape(-1, *shape)
    raise UsageError(
        f"input of shape {list(X.shape)} does not fit the model's input {list(shape)} per sample"
    )


def _is_model(source: Any) -> bool:
    return not isinstance(source, str | os.PathLike) and callable(getattr(source, "to", None))


def _train_record(meta: dict[str, Any]) -> dict[str, Any]:
    """The training settings ``zoo train`` stores in a weights file (``{}`` for others)."""
    extra = meta.get("extra")
    train = extra.get("train") if isinstance(extra, dict) else None
    return train if isinstance(train, dict) else {}


# Dataset options a file may not set: they name files or make the loader read, write or fetch.
_IO_OPTION_WORDS = ("root", "download", "dir", "path", "file", "url", "cache", "home")


def _recorded_dataset_kwargs(
    train: dict[str, Any], source: Path, *, data_dir_given: bool
) -> dict[str, Any]:
    """The dataset kwargs a run recorded that are applied when it is evaluated: its split
    settings (fractions, seeds, sizes). Those that name paths or cause I/O (``root``,
    ``download``, ``data_dir``, a file's path) are description only: never applied, and one
    warning line names them, for the user to give again (``--data-dir``, ``--dataset-arg``)."""
    recorded = train.get("dataset_kwargs") or {}
    if not isinstance(recorded, dict):
        recorded = {"dataset_kwargs": recorded}
    applied = {k: v for k, v in recorded.items() if _inert_option(k, v)}
    withheld = [f"{k}={short_repr(v, 200)}" for k, v in recorded.items() if k not in applied]
    if train.get("data_dir") and not data_dir_given:
        withheld.append(f"data_dir={short_repr(train['data_dir'], 200)}")
    if withheld:
        logger.warning(
            "%s: recorded dataset options not applied (a file may not choose paths or I/O; "
            "give them again, e.g. --data-dir): %s",
            source,
            ", ".join(withheld),
        )
    return applied


def _inert_option(key: Any, value: Any) -> bool:
    """Whether a recorded dataset option is a plain setting (no path, no I/O)."""
    name = str(key).lower()
    if any(word in name for word in _IO_OPTION_WORDS):
        return False
    if isinstance(value, list):
        return len(value) <= 1000 and all(_inert_option(key, v) for v in value)
    if isinstance(value, str):
        return len(value) <= 200 and not any(c in value for c in "/\\:~") and value[:1] != "."
    return value is None or isinstance(value, bool | int | float)


def _recorded_dataset(meta: dict[str, Any], source: Path | None = None) -> str | None:
    """The qualified name of the dataset the weights pin (``None`` if they pin none).

    With ``source`` (evaluate, which loads the dataset) a pinned dataset that is not here is a
    one-line error naming what to install; without (predict, which only wants its shape),
    ``None``.
    """
    from zoo.weights.files import read_pins

    pin = read_pins(meta, source or "").get("dataset")
    if pin is None:
        return None
    if source is not None:
        return pinned_entry(pin, source=str(source)).qualname
    entry = get_registry().pinned(pin)
    return entry.qualname if entry is not None else None


def _recorded_loss(meta: dict[str, Any], source: Path) -> str | None:
    """The qualified name of the loss the weights were trained with, when it is installed.

    Metrics do not need the training loss: when its plugin is gone this logs a warning and
    returns ``None``, so the task's default loss is reported instead.
    """
    from zoo.weights.files import read_pins

    pin = read_pins(meta, source).get("loss")
    if pin is None:
        return None
    entry = get_registry().pinned(pin)
    if entry is not None:
        return entry.qualname
    logger.warning("%s: %s; reporting the task's default loss instead", source, missing_reason(pin))
    return None


def _source_name(source: Any, model: torch.nn.Module) -> str:
    """How messages name what :func:`predict` was given: its path, else the model entry."""
    if not _is_model(source):
        return os.fspath(source)
    spec = getattr(model, "zoo_spec", None)
    return f"model {spec.model!r}" if spec is not None else "the model"


def _why_no_task(model: torch.nn.Module, meta: dict[str, Any]) -> str:
    """Why :func:`_task_and_shape` found no task: the recorded dataset is not installed, or
    none is recorded and the model entry serves several tasks."""
    spec = getattr(model, "zoo_spec", None)
    recorded = meta.get("dataset") or getattr(spec, "dataset", None)
    if recorded:
        return f"dataset {str(recorded)[:80]!r} it was trained on is not installed"
    what = f"model {spec.model!r}" if spec is not None else "the model"
    return f"no dataset is recorded and {what} serves several tasks"


def _task_and_shape(
    model: torch.nn.Module, dataset: str | None, meta: dict[str, Any]
) -> tuple[str | None, tuple[int, ...] | None]:
    """The task and per-sample input shape: the dataset's, else those a run on your own data
    recorded, else the model entry's only task."""
    if dataset:
        try:
            entry = get_entry("dataset", dataset)
            return entry.tasks[0], tuple(entry.meta["input_shape"])
        except UsageError:
            pass
    train = _train_record(meta)
    data = train.get("data")
    if isinstance(data, dict) and train.get("task") in tasks.TASKS:
        shape = data.get("input_shape")
        valid = isinstance(shape, list) and 0 < len(shape) <= 3
        valid = valid and all(type(d) is int and 0 < d <= 1 << 20 for d in shape)
        return train["task"], (tuple(shape) if valid else None)
    spec = getattr(model, "zoo_spec", None)
    ref = f"{spec.plugin}/{spec.model}" if spec is not None else meta.get("model")
    if not ref:
        return None, None
    model_entry = get_entry("model", ref)
    return (model_entry.tasks[0] if len(model_entry.tasks) == 1 else None), None
