"""A run's loss curves, ``loss_curves.png``, drawn beside training by a helper process.

Importing matplotlib and drawing a first figure cost about a second of CPU, longer than the
whole of a small run's bookkeeping. :class:`CurvesHelper` starts ``python -m zoo.train.curves``
when training starts: it imports matplotlib and draws a throwaway figure on another core while
training runs, says ``ready``, and then waits for the run's history on its stdin (one JSON
object), draws ``loss_curves.png`` atomically and exits. A helper that is not ready when the
run ends (a run of a second or two), cannot start or fails is not waited for: the curves are
drawn in this process instead, as before.

The helper takes its one request from its parent's pipe and nothing else; a closed pipe with
no request (the run failed or was killed) makes it exit having written nothing. It runs in its
own session, so Ctrl-C in the terminal reaches the run, not the helper.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

from zoo._util.atomic import atomic_path

__all__ = ["CURVES", "CurvesHelper", "curves_figure", "plot_curves"]

CURVES = "loss_curves.png"
READY = b"ready\n"
# How long a ready helper may take to draw one figure before this process draws it instead.
DRAW_TIMEOUT_S = 60.0


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

    ``CurvesHelper.start()`` when training starts, :meth:`draw` once at the end (it falls back
    to drawing here), :meth:`close` in any case (a helper given no request is stopped).
    """

    def __init__(self, process: subprocess.Popen[bytes] | None) -> None:
        self.process = process
        self._ready = False

    @classmethod
    def start(cls) -> CurvesHelper:
        """Start the helper; one that cannot start leaves the drawing to :meth:`draw` here."""
        root = str(Path(__file__).resolve().parents[2])  # where this zoo is imported from
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "zoo.train.curves"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
            )  # fmt: skip
        except (OSError, ValueError):
            process = None
        return cls(process)

    def ready(self) -> bool:
        """Whether the helper has matplotlib imported and waits for the request (no waiting)."""
        p = self.process
        if p is None or p.stdout is None or p.poll() is not None:
            return False
        if not self._ready and select.select([p.stdout], [], [], 0)[0]:
            self._ready = p.stdout.read(len(READY)) == READY
        return self._ready

    def draw(self, run_dir: Path, history: list[dict[str, Any]], metric: str) -> Path | None:
        """``loss_curves.png`` of ``history``: by the helper when it is ready, else here."""
        if history and self.ready() and self._request(run_dir, history, metric):
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
            p.communicate(line, timeout=DRAW_TIMEOUT_S)
        except (TypeError, ValueError, OSError, subprocess.TimeoutExpired):
            _stop(p)
            return False
        return p.returncode == 0

    def close(self) -> None:
        """Stop a helper that was given no request (the run failed, or drew here)."""
        if self.process is not None:
            _stop(self.process)
            self.process = None


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.communicate()


def _warm_up() -> None:
    """Import matplotlib and draw one figure like a run's (fonts, Agg, PNG writer)."""
    import io

    row = {"epoch": 1, "train_loss": 1.0, "test_loss": 1.0, "train_m": 0.5, "test_m": 0.5}
    curves_figure([row, {**row, "epoch": 2}], "m").savefig(io.BytesIO(), format="png", dpi=100)


def main() -> int:
    """The helper: warm up, say ready, draw the one request read from stdin; exit status 0
    only when it drew (a line, not the pipe's end: a process forked from the run may hold a
    copy of the pipe)."""
    try:
        _warm_up()
        sys.stdout.buffer.write(READY)
        sys.stdout.buffer.flush()
        line = sys.stdin.buffer.readline()
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


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    os._exit(code)  # the file is in place; tearing matplotlib down would only keep the run waiting
