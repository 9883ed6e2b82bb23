"""``zoo bench`` (run the benchmark grid) and ``zoo bench compare OLD.json NEW.json``.

Every file ``zoo bench`` will write is checked before any work (exit 2). Interrupted by Ctrl-C
or SIGTERM, it still prints the table of the rows that finished and writes them to the files
asked for (the JSON says ``interrupted``), then exits 130 (Ctrl-C) or 143 (SIGTERM).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from zoo.errors import UsageError

if TYPE_CHECKING:
    from zoo.bench.report import BenchResult

F = TypeVar("F", bound=Callable[..., Any])

LIST_HELP = "comma-separated or repeated"


def _list_option(*names: str, dest: str, metavar: str, help: str) -> Callable[[F], F]:
    """A repeatable option whose values may also be comma-separated."""
    return click.option(*names, dest, multiple=True, metavar=metavar, help=f"{help} ({LIST_HELP}).")


@click.group(
    "bench",
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@_list_option("--model", "-m", dest="models", metavar="NAMES", help="Model names or patterns")
@_list_option("--dataset", "-d", dest="datasets", metavar="NAMES", help="Datasets or patterns")
@_list_option("--loss", dest="losses", metavar="NAMES", help="Losses, or auto [task default]")
@_list_option("--device", dest="devices", metavar="DEVICES", help="cpu, cuda, cuda:N, mps, auto")
@_list_option("--batch-size", "-b", dest="batch_sizes", metavar="SIZES", help="Batch sizes [32]")
@_list_option(
    "--precision", dest="precisions", metavar="PRECISIONS", help="fp32, bf16, fp16 [fp32]"
)
@_list_option("--mode", dest="modes", metavar="MODES", help="infer, train, fit [infer,train]")
@click.option("--epochs", type=int, default=5, show_default=True, help="Epochs of each fit.")
@click.option(
    "--lr", type=float, default=1e-3, show_default=True, help="Learning rate (train/fit)."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--export",
    "export_dir",
    default=None,
    metavar="DIR",
    help="Export every fitted model into DIR.",
)
@click.option(
    "--json", "json_path", default=None, metavar="FILE", help="Write JSON to FILE ('-': stdout)."
)
@click.option("--csv", "csv_path", default=None, metavar="FILE", help="Write CSV to FILE.")
@click.option(
    "--plot", "plot_path", default=None, metavar="FILE.png", help="Write a PNG plot to FILE."
)
@click.option(
    "--isolate",
    is_flag=True,
    help="Run each combination in its own process; adds its whole-process peak RSS (proc rss).",
)
@click.option(
    "--min-run-time", type=float, default=0.2, show_default=True, help="Seconds timed per row."
)
@click.option("--warmup", type=float, default=None, help="Warm-up seconds [min-run-time/4].")
@click.option(
    "--threads",
    type=int,
    default=None,
    help="torch threads for every row (recorded) [$OMP_NUM_THREADS, else physical cores / "
    "processes on this node].",
)
@click.option(
    "--input-shape",
    default=None,
    metavar="CxHxW|F",
    help="Synthetic input of this shape (no --dataset) [each model's declared input_size].",
)
@click.option(
    "--num-classes", type=int, default=None, help="Synthetic labels' classes [model's, or 1000]."
)
@click.option("--compile", "compile_", is_flag=True, help="Run each model through torch.compile.")
@click.option(
    "--compile-mode",
    default=None,
    metavar="MODE",
    help="torch.compile mode (implies --compile): default, reduce-overhead, max-autotune, "
    "max-autotune-no-cudagraphs.",
)
@click.option("--channels-last", is_flag=True, help="Channels-last model and 4-D inputs.")
@_list_option(
    "--runtime",
    dest="runtimes",
    metavar="RUNTIMES",
    help="torch, onnxruntime (fp32 infer of zoo's ONNX export) [torch]",
)
@click.option("--dry-run", is_flag=True, help="Print the plan (rows, skipped) and exit.")
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="No progress on stderr (else: a bar on a terminal, a line per finished row elsewhere).",
)
@click.pass_context
def bench_cmd(ctx: click.Context, **opts: Any) -> None:
    """Benchmark every compatible model x dataset x loss x device x batch size x precision.

    \b
    zoo bench --model 'mlp,tinyvgg' --dataset digits,circles --mode infer,train,fit
    zoo bench --model resnet18,mobilenet-v3-small --input-shape 3x224x224 --mode infer
    zoo bench compare OLD.json NEW.json [--threshold 0.07] [--strict]
    zoo bench merge A.json B.json ... [--json ALL.json] [--csv F] [--plot F.png]

    peak alloc is the peak bytes torch allocated for the row's model, batch and first steps:
    on CPU from torch.profiler's memory accounting, on CUDA torch.cuda.max_memory_allocated
    after a reset, so it does not depend on the rows before it. --isolate adds proc rss, the
    whole process's peak resident set. A row is noisy when IQR/median, or the spread of its
    separated timing rounds, exceeds 10%. Every output is checked writable before any work;
    Ctrl-C or SIGTERM prints and writes the rows that finished (the JSON says "interrupted")
    and exits 130 or 143.

    Without --dataset the input is synthetic: random samples of --input-shape (else each
    model's declared input_size) and random labels of the model's task. GMACs are
    torch.utils.flop_counter's FLOPs / 2 for one call (forward; forward + backward for train);
    GFLOP/s divides them by the median latency; %peak is that over the device's dense peak
    for the dtype (known NVIDIA devices, see zoo.bench.flops).
    """
    if ctx.invoked_subcommand is not None:
        given = [k for k in ("models", "datasets", "losses", "devices") if opts[k]]
        if given:
            raise UsageError("bench options go without a subcommand: zoo bench --model ...")
        return
    if not opts["models"]:
        raise UsageError("give --model (names or fnmatch patterns, comma-separated)")
    if opts["plot_path"] and not opts["plot_path"].lower().endswith(".png"):
        raise UsageError(f"--plot writes a PNG image; name it FILE.png, not {opts['plot_path']}")
    if opts["dry_run"]:
        _dry_run(opts)
        return
    _check_outputs(opts)
    _run(opts)


def _grid(opts: dict[str, Any]) -> Any:
    """The :class:`zoo.bench.plan.Grid` the options ask for."""
    from zoo.bench.plan import Grid

    return Grid(
        opts["models"],
        opts["datasets"],
        opts["losses"] or "auto",
        opts["devices"] or "auto",
        opts["batch_sizes"] or (32,),
        opts["precisions"] or "fp32",
        opts["modes"] or ("infer,train",),
        opts["input_shape"],
        opts["num_classes"],
        opts["compile_"],
        opts["compile_mode"],
        opts["channels_last"],
        opts["runtimes"] or "torch",
    )


def _dry_run(opts: dict[str, Any]) -> None:
    """Print the rows the run would measure and the skipped combinations; run nothing."""
    from zoo.bench.plan import make_plan

    plan = make_plan(_grid(opts))
    click.echo(f"plan: {len(plan.combos)} row(s)")
    for i, combo in enumerate(plan.combos, 1):
        click.echo(f"  [{i}] {combo.label()}")
    for skip in plan.skipped:
        where = "/".join(
            str(skip[k]) for k in ("model", "dataset", "loss", "device", "precision") if skip.get(k)
        )
        click.echo(f"skipped  {where}: {skip['reason']}")


def _check_outputs(opts: dict[str, Any]) -> None:
    """Fail before any work (exit 2) if a file the run would write cannot be written."""
    from zoo._util.atomic import check_writable

    files = {"--json": opts["json_path"], "--csv": opts["csv_path"], "--plot": opts["plot_path"]}
    targets = [(flag, path, Path(path)) for flag, path in files.items() if path not in (None, "-")]
    if opts["export_dir"]:  # a probe: the files in DIR are named after each combination
        export_dir = opts["export_dir"]
        targets.append(("--export", export_dir, Path(export_dir) / ".zoo-export-check"))
    seen: dict[Path, str] = {}
    for flag, given, target in targets:
        same = seen.setdefault(target.resolve(), flag)
        if same != flag:
            raise UsageError(f"{same} and {flag} name the same file {given}: give each its own")
        try:
            check_writable(target)
        except OSError as exc:
            raise UsageError(f"cannot write {flag} {given}: {exc.strerror or exc}") from None


def _run(opts: dict[str, Any]) -> None:
    """Run the grid, print the table (or JSON to stdout), write the files; exit 1 on errors,
    130 / 143 when interrupted by Ctrl-C / SIGTERM (after reporting the rows that finished)."""
    from zoo.bench.plan import BenchInterrupted

    progress = not opts["quiet"]
    modes = opts["modes"] or ("infer,train",)
    if opts["export_dir"] and not any("fit" in m for m in modes):
        click.echo("warning: --export only applies to --mode fit", err=True)
    signals: list[int] = []
    with _sigterm_interrupts(signals):
        try:
            result = _bench(opts, modes, progress)
        except BenchInterrupted as exc:
            result = exc.result
        _report(result, opts, progress)
    ctx = click.get_current_context()
    if result.interrupted:
        signum = signals[0] if signals else signal.SIGINT
        click.echo(
            f"interrupted ({signal.Signals(signum).name}): {len(result.rows)} of "
            f"{result.planned} combinations finished",
            err=True,
        )
        ctx.exit(128 + signum)
    if result.errors:
        click.echo(f"error: {len(result.errors)} of {len(result.rows)} rows failed", err=True)
        ctx.exit(1)


@contextmanager
def _sigterm_interrupts(caught: list[int]) -> Iterator[None]:
    """Within the block SIGTERM raises ``KeyboardInterrupt`` (and is recorded in ``caught``),
    so a terminated run reports its rows and removes its temp files as Ctrl-C does."""

    def interrupt(signum: int, frame: Any) -> None:
        caught.append(signum)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _bench(opts: dict[str, Any], modes: Any, progress: bool) -> BenchResult:
    """:func:`zoo.bench.plan.bench` with the command's options."""
    from zoo.bench.plan import bench

    grid = _grid(opts)
    return bench(
        grid.models,
        grid.datasets,
        grid.losses,
        devices=grid.devices,
        batch_sizes=grid.batch_sizes,
        precisions=grid.precisions,
        modes=modes,
        input_shape=grid.input_shape,
        num_classes=grid.num_classes,
        compile=grid.compile,
        compile_mode=grid.compile_mode,
        channels_last=grid.channels_last,
        runtimes=grid.runtimes,
        epochs=opts["epochs"],
        lr=opts["lr"],
        seed=opts["seed"],
        export_dir=opts["export_dir"],
        isolate=opts["isolate"],
        min_run_time=opts["min_run_time"],
        warmup=opts["warmup"],
        threads=opts["threads"],
        progress=progress,
    )


def _report(result: BenchResult, opts: dict[str, Any], progress: bool) -> None:
    """The table (or the JSON, with ``--json -``) on stdout, then the files asked for."""
    written = []
    if opts["json_path"] == "-":
        from zoo.cli.output import echo_json

        echo_json(result.to_dict())
    else:
        click.echo(result.table())
        if opts["json_path"]:
            written.append(str(result.write_json(opts["json_path"])))
    if opts["csv_path"]:
        written.append(str(result.write_csv(opts["csv_path"])))
    if opts["plot_path"]:
        written.append(str(result.plot(opts["plot_path"])))
    if written and progress:
        click.echo(f"wrote {', '.join(written)}", err=True)


def _threshold(text: str) -> float:
    """``0.07`` or ``7%`` -> 0.07; anything else is a one-line usage error."""
    value = text.strip()
    try:
        return float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise UsageError(f"threshold must be a number such as 0.07 or 7%, got {text!r}") from None


@bench_cmd.command("compare")
@click.argument("old")
@click.argument("new")
@click.option(
    "--threshold",
    default="0.07",
    show_default=True,
    metavar="X|N%",
    help="Rows slower by more than this fraction are flagged.",
)
@click.option("--strict", is_flag=True, help="Count slower rows flagged noisy as regressions too.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare_cmd(old: str, new: str, threshold: str, strict: bool, as_json: bool) -> None:
    """Compare two `zoo bench --json` files; exit 1 when a matching row got slower or fails.

    Rows match on model, dataset, loss, device, batch size, precision and mode; rows whose
    device name, torch version or threads differ are shown as unlike, not compared. Slower
    rows flagged noisy are not counted unless --strict. Schema-1 files are read: fields they
    lack count as unknown, and the report says so.
    """
    from zoo.bench.report import compare, format_comparison, load_result

    cmp = compare(load_result(old), load_result(new), _threshold(threshold), strict=strict)
    if not cmp.rows:
        raise UsageError(f"{old} and {new} share no rows to compare (different benchmarks?)")
    if as_json:
        from zoo.cli.output import echo_json

        echo_json(
            {
                "threshold": cmp.threshold,
                "strict": cmp.strict,
                "schemas": list(cmp.schemas),
                "rows": cmp.rows,
                "regressed": len(cmp.regressed),
                "noisy_slower": len(cmp.noisy_slower),
                "unlike": len(cmp.unlike),
                "broken": len(cmp.broken),
                "only_old": [_key(r) for r in cmp.only_old],
                "only_new": [_key(r) for r in cmp.only_new],
            }
        )
    else:
        click.echo(format_comparison(cmp))
    if cmp.regressed:
        click.echo(
            f"regression: {len(cmp.regressed)} row(s) slower by more than {cmp.threshold:.0%}",
            err=True,
        )
    if cmp.broken:
        click.echo(f"regression: {len(cmp.broken)} row(s) ran before and fail now", err=True)
    if cmp.failed:
        click.get_current_context().exit(1)


@bench_cmd.command("merge")
@click.argument("files", nargs=-1, required=True)
@click.option("--json", "json_path", default=None, metavar="FILE", help="Write the merged JSON.")
@click.option("--csv", "csv_path", default=None, metavar="FILE", help="Write the table as CSV.")
@click.option("--plot", "plot_path", default=None, metavar="FILE.png", help="Write a PNG plot.")
def merge_cmd(
    files: tuple[str, ...], json_path: str | None, csv_path: str | None, plot_path: str | None
) -> None:
    """Put the rows of several `zoo bench --json` files (machines) in one table.

    Rows line up on model, input, loss, batch size, precision, mode and knobs; each machine
    (device, device name, host, torch version) gets a ms/batch column. The files must share
    one schema. The merged JSON is itself a bench result (compare and merge read it).
    """
    from zoo.bench.merge import merge_files

    if plot_path and not plot_path.lower().endswith(".png"):
        raise UsageError(f"--plot writes a PNG image; name it FILE.png, not {plot_path}")
    _check_outputs(
        {"json_path": json_path, "csv_path": csv_path, "plot_path": plot_path, "export_dir": None}
    )
    merged = merge_files(files)
    click.echo(merged.table())
    written = []
    if json_path:
        written.append(str(merged.write_json(json_path)))
    if csv_path:
        written.append(str(merged.write_csv(csv_path)))
    if plot_path:
        written.append(str(merged.plot(plot_path)))
    if written:
        click.echo(f"wrote {', '.join(written)}", err=True)


def _key(row: dict[str, Any]) -> dict[str, Any]:
    from zoo.bench.report import KEY_FIELDS

    return {k: row.get(k) for k in KEY_FIELDS}
