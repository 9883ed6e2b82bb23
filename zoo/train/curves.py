"""A run's loss curves, ``loss_curves.png``, drawn beside training by a helper process.

Importing matplotlib and drawing a first figure cost about a second of CPU, longer than the
whole of a small run's bookkeeping. When the first epoch shows that training has a few
seconds left (:data:`WORTH_S`), :class:`CurvesHelper` starts a helper process: it imports
matplotlib and draws a throwaway figure on another core while training runs, says ``ready``,
waits for the run's history on its stdin (one JSON line), draws ``loss_curves.png``
atomically and exits. A helper that is not ready when the run ends, cannot start or fails is
not waited for: the curves are drawn in this process instead, as they are for short runs.

The helper takes its one request from its parent's pipe and nothing else; a run that ends
without a request (it failed or was killed) makes it exit having written nothing. It runs in
its own session, so Ctrl-C in the terminal reaches the run, not the helper.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from zoo._util.atomic import atomic_path
from zoo._util.log import get_logger

__all__ = ["CURVES", "CurvesHelper", "curves_figure", "plot_curves"]

log = get_logger(__name__)

CURVES = "loss_curves.png"
READY = b"ready\n"
# A helper pays off when training has about this long left to hide its start behind.
WORTH_S = 2.0
# How long a ready helper may take to draw one figure before this process draws it instead.
DRAW_TIMEOUT_S = 15.0


def plot_curves(
    run_dir: str | os.PathLike, history: list[dict[str, Any]], metric: str
) -> Path | None:
    """Train/test loss and ``metric`` per epoch, side by side, as ``loss_curves.png``."""
    if not history:
        return None
    fig = curves_figure(history, metric)
    path = Path(run_dir) / CURVES
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def curves_figure(history: list[dict[str, Any]], metric: str) -> Any:
    """The matplotlib ``Figure`` :func:`plot_curves` saves: loss and ``metric`` per epoch.

    Epoch ticks are whole numbers. ``train_loss`` is the running mean of the step losses over
    the epoch (the weights change while it is summed), so its legend says so; every other
    curve is measured on the weights at the end of the epoch.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 4))
    # fixed margins: a layout engine would double the cost of drawing two small panels
    fig.subplots_adjust(left=0.085, right=0.98, bottom=0.12, top=0.91, wspace=0.24)
    for ax, name in zip(fig.subplots(1, 2), ("loss", metric), strict=True):
        for split, style in (("train", "-o"), ("val", "-^"), ("test", "-s")):
            key = f"{split}_{name}"
            values = [row.get(key) for row in history]
            if any(v is not None for v in values):
                label = "train loss (running mean)" if key == "train_loss" else split
                ax.plot(
                    epochs, [float("nan") if v is None else v for v in values], style, label=label
                )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


class CurvesHelper:
    """The helper process of one run (see the module docstring).

    :meth:`start` once the first epoch says how long the run will take, :meth:`draw` once at
    the end (it falls back to drawing here), :meth:`close` in any case (a helper given no
    request is stopped).
    """

    def __init__(self, process: subprocess.Popen[bytes] | None) -> None:
        self.process = process
        self._ready = False

    @classmethod
    def start(cls, seconds_left: float = float("inf")) -> CurvesHelper:
        """Start the helper when the run has ``seconds_left`` of training to hide it behind
        (:data:`WORTH_S` at least) on a POSIX system; otherwise, or when it cannot start, the
        curves are drawn here by :meth:`draw`."""
        if seconds_left < WORTH_S or os.name != "posix":
            return cls(None)
        root = str(Path(__file__).resolve().parents[2])  # the zoo this process imported
        code = f"import sys; sys.path.insert(0, {root!r}); import zoo.train.curves as c; c.serve()"
        try:
            process = subprocess.Popen(
                [sys.executable, "-P", "-c", code], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
        except (OSError, ValueError):
            process = None
        return cls(process)

    def ready(self) -> bool:
        """Whether the helper has matplotlib imported and waits for the request (no waiting)."""
        p = self.process
        if p is None or p.stdout is None or p.poll() is not None:
            return False
        if not self._ready:
            try:
                if select.select([p.stdout], [], [], 0)[0]:
                    self._ready = os.read(p.stdout.fileno(), len(READY)) == READY
            except (OSError, ValueError):
                return False
        return self._ready

    def draw(self, run_dir: Path, history: list[dict[str, Any]], metric: str) -> Path | None:
        """``loss_curves.png`` of ``history``: by the helper when it is ready, else here."""
        if history and self.ready() and self._request(Path(run_dir), history, metric):
            return Path(run_dir) / CURVES
        self.close()
        return plot_curves(run_dir, history, metric)

    def _request(self, run_dir: Path, history: list[dict[str, Any]], metric: str) -> bool:
        """Have the ready helper draw the curves; whether it did."""
        p, self.process = self.process, None
        assert p is not None
        request = {"run_dir": str(run_dir), "history": history, "metric": metric}
        try:
            line = json.dumps(request, default=float).encode() + b"\n"
            _, err = p.communicate(line, timeout=DRAW_TIMEOUT_S)
        except (TypeError, ValueError, OSError, subprocess.TimeoutExpired) as exc:
            _stop(p)
            for temp in run_dir.glob(f".{CURVES}.*.tmp"):  # what a killed helper left
                temp.unlink(missing_ok=True)
            log.debug("curves helper: %s; drawing here", exc)
            return False
        if p.returncode != 0:
            log.debug("curves helper exited %s: %s", p.returncode, err.decode(errors="replace"))
        return p.returncode == 0

    def close(self) -> None:
        """Stop a helper that was given no request (the run failed, or drew here)."""
        if self.process is not None:
            _stop(self.process)
            self.process = None


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Kill the helper's process group (its own session: anything it started goes too) and
    reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:  # already gone
        process.kill()
    process.communicate()


def _warm_up() -> None:
    """Import matplotlib and draw one figure like a run's (fonts, Agg, PNG writer)."""
    import io

    row = {"epoch": 1, "train_loss": 1.0, "test_loss": 1.0, "train_m": 0.5, "test_m": 0.5}
    curves_figure([row, {**row, "epoch": 2}], "m").savefig(io.BytesIO(), format="png", dpi=100)


def _read_request(parent: int) -> bytes:
    """The request line from stdin; ``b""`` when the pipe closes or the run that started
    this helper is gone (a process forked from the run may keep the pipe open)."""
    while os.getppid() == parent:
        if select.select([sys.stdin.buffer], [], [], 1.0)[0]:
            return sys.stdin.buffer.readline()
    return b""


def main() -> int:
    """The helper: warm up, say ready, draw the one request read from stdin; exit status 0
    only when it drew."""
    parent = os.getppid()
    try:
        _warm_up()
        sys.stdout.buffer.write(READY)
        sys.stdout.buffer.flush()
        line = _read_request(parent)
        if not line:
            return 3  # the run ended without a request
        request = json.loads(line)
        plot_curves(request["run_dir"], request["history"], request["metric"])
    except BrokenPipeError:  # the run is gone
        return 3
    except Exception as exc:  # one line for the parent, which draws the curves itself
        print(f"zoo curves helper: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def serve() -> None:
    """Run :func:`main` and leave at once: the file is in place, and tearing matplotlib down
    would only keep the run waiting."""
    code = main()
    sys.stderr.flush()
    os._exit(code)
