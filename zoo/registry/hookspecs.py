"""The plugin contract: hook specifications and the ``hookimpl`` marker plugins use.

Every hook receives a ``register`` callback (the pattern of ``llm``): plugins call it once
per entry. Registration only records a name and a lazy ``"module:attr"`` target, so listing
never imports a plugin's models, and never imports torch.

Plugins are validated against these specifications when they load (see
:mod:`zoo.registry.plugins`): an implementation whose name no spec has (``register_model``), whose
arguments are not the spec's (``reg`` instead of ``register``), or that is a ``hookwrapper``/
``wrapper`` of a register hook fails its plugin, naming the hook and the argument. The list of
register hooks and the kind each registers is derived from the ``register_<kinds>(register)``
specs below. The specs carry no annotations: their signatures are what the plugin guide shows.

Besides the register hooks: training events (:func:`on_fit_start`, :func:`on_epoch_end`,
:func:`on_fit_end`), which the trainer calls for each plugin alone, each call in its own guard
(a plugin that raises is warned about and skipped for the rest of the run; training goes on),
and :func:`register_commands`, called once when the plugin loads, with a group of its own. Every
hook is a plain function: a ``hookwrapper``/``wrapper`` implementation fails its plugin.

A registration's meta is description only: plain JSON (bounded in depth and size), never one of
the keys zoo sets itself (``name``, ``kind``, ``plugin``, ``qualname``, ``dist``, ``version``,
``target``); a ``pretrained`` declaration is validated item by item. Anything else fails the
plugin, naming the entry (see :func:`zoo.registry.entries.make_entry`).
"""

from __future__ import annotations

import pluggy

__all__ = [
    "EVENTS",
    "PROJECT",
    "hookimpl",
    "hookspec",
    "on_epoch_end",
    "on_fit_end",
    "on_fit_start",
    "register_commands",
    "register_datasets",
    "register_losses",
    "register_models",
]

PROJECT = "zoo"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_models(register):
    """Register models: ``register(name, target, task=..., summary=..., defaults=...)``.

    ``target(**kwargs)`` returns a ``torch.nn.Module``. Optional meta: ``task`` or ``tasks``,
    ``input_kind`` ("features", "image" or "any"), ``defaults`` (kwargs dict) and
    ``pretrained`` (a list of pretrained entry dicts, see ``docs/plugins.md``).
    """


@hookspec
def register_losses(register):
    """Register losses: ``register(name, target, tasks=[...], summary=...)``.

    ``target(**kwargs)`` returns a module called as ``loss(output, target)``. Meta ``expects``
    says what the loss takes from the model: "logits" (default), "probabilities" (zoo applies
    sigmoid/softmax first) or "log-probabilities" (zoo applies log-softmax first).
    """


@hookspec
def register_datasets(register):
    """Register datasets: ``register(name, target, task=..., input_shape=(...), num_classes=...)``.

    ``target(split, **kwargs)`` with ``split`` in "train", "test" (optionally "val") returns
    ``(X, y)`` tensors or a ``torch.utils.data.Dataset``.
    """


@hookspec
def register_commands(cli):
    """Add CLI commands: ``@cli.command()`` on the ``click.Group`` given (the pattern of ``llm``).

    Called once when the plugin loads; its commands become ``zoo NAME``. A name zoo's own
    commands (or an earlier plugin) have is refused with a warning; a hook that raises fails
    the plugin. Keep the command's heavy imports inside its function.
    """


@hookspec
def on_fit_start(run):
    """Training starts (rank 0 only): ``run`` is the :class:`zoo.train.Run` of this fit.

    ``run`` is the same object for the whole fit (``run.id`` keys a plugin's own state):
    ``run_dir`` (a ``Path`` or ``None``), ``settings`` (what ``run.json`` records),
    ``model``, ``dataset``, ``task``, ``loggers`` (the names ``--logger`` chose), ``epoch``.
    """


@hookspec
def on_epoch_end(run, metrics):
    """An epoch ended: ``metrics`` is its row of ``metrics.csv`` (``epoch``, ``train_loss``,
    ``test_loss`` or ``val_loss``, ..., ``lr``, ``seconds``), a copy; ``run.epoch`` is it."""


@hookspec
def on_fit_end(run, metrics):
    """Training ended: ``metrics`` are the final test metrics (``{}`` when it did not finish);
    ``run.status`` says how it ended (``finished``, ``stopped_early``, ``failed``,
    ``diverged``, ``interrupted``, ``killed``). Called however the fit ended."""


#: The training events, in the order a fit calls them.
EVENTS = ("on_fit_start", "on_epoch_end", "on_fit_end")
