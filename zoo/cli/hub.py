"""``zoo export``, ``fetch``, ``publish`` and ``cache``: thin commands over the Python API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from zoo._util.log import get_logger
from zoo.cli.output import echo_json, echo_table, split_csv
from zoo.errors import UsageError

logger = get_logger(__name__)

SUFFIXES = {"safetensors": ".safetensors", "onnx": ".onnx", "hf": ""}


def card_options(command: Callable) -> Callable:
    """``--card FILE`` and the card fields zoo cannot derive, as options."""
    options = [
        click.option(
            "--card", "card_file", type=click.Path(dir_okay=False),
            help="Model card fields: a card (markdown with a --- YAML header) or key: value lines.",
        ),
        click.option("--intended-use", help="Card: what the weights are for (required in a card)."),
        click.option("--limitations", help="Card: known limitations."),
        click.option("--evaluation", help="Card: evaluation protocol (default: from the metrics)."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


@click.command("export")
@click.argument("source", metavar="RUN|WEIGHTS|ENTRY")
@click.option(
    "--format", "fmt", type=click.Choice(list(SUFFIXES)), default=None,
    help="Output format. Default: from -o's extension (.onnx), else safetensors.",
)  # fmt: skip
@click.option(
    "-o", "--output", type=click.Path(),
    help="Output file (a folder for --format hf). Default: MODEL-DATASET.safetensors (.onnx, "
    "or a MODEL-DATASET folder) in the current directory.",
)  # fmt: skip
@click.option("--force", is_flag=True, help="Overwrite the output file if it exists.")
@click.option("--input-shape", help="ONNX example input shape of one sample, e.g. 1,8,8.")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset.")
@click.option(
    "--include-transform", is_flag=True,
    help="ONNX: bake the recorded standardisation into the graph, so it takes raw inputs "
    "(images: normalisation only, no resize/crop).",
)  # fmt: skip
@click.option("--license", "license_", help="Card (--format hf): license of the weights.")
@card_options
def export_cmd(
    source: str,
    fmt: str | None,
    output: str | None,
    force: bool,
    input_shape: str | None,
    opset: int,
    include_transform: bool,
    license_: str | None,
    card_file: str | None,
    intended_use: str | None,
    limitations: str | None,
    evaluation: str | None,
) -> None:
    """Export a run's, a weights file's or a pretrained entry's model as safetensors, ONNX or
    a Hugging Face style folder (hf: config.json, model.safetensors, README.md model card).

    The file goes to -o PATH, else to MODEL-DATASET.safetensors (or MODEL-DATASET.onnx, or the
    folder MODEL-DATASET) in the current directory; an existing file (a non-empty folder) is
    only replaced with --force. Prints the path.
    """
    from zoo import api
    from zoo.weights import files as weights
    from zoo.weights import loading

    src = api.resolve_weights(source)
    card = {"license": license_, "intended_use": intended_use, "limitations": limitations,
            "evaluation": evaluation}  # fmt: skip
    if include_transform and fmt not in (None, "onnx"):
        raise UsageError(f"--include-transform only applies to --format onnx, not {fmt}")
    if fmt == "hf":
        _export_hf(src, output, force, card_file, card)
        return
    if card_file or any(card.values()):
        raise UsageError("--card, --license and the card options only apply to --format hf")
    suffix = Path(output).suffix.lower() if output else ""
    fmt = fmt or ("onnx" if suffix == ".onnx" else "safetensors")
    other = next((f for f, s in SUFFIXES.items() if s and s == suffix and f != fmt), None)
    if other:
        raise UsageError(
            f"--format {fmt} does not match the output {output} (a {other} name); "
            f"use --format {other} or an output ending in {SUFFIXES[fmt]}"
        )
    if include_transform and fmt != "onnx":
        raise UsageError("--include-transform only applies to --format onnx")
    shape = None
    if input_shape is not None:
        if fmt != "onnx":
            raise UsageError("--input-shape only applies to --format onnx")
        from zoo.weights.onnx_export import parse_shape

        shape = parse_shape(input_shape)
    if fmt == "onnx":
        from zoo.weights.onnx_export import check_opset

        check_opset(opset)
    meta = weights.read_metadata(src)
    stem = _default_stem(src, meta)
    out = Path(output) if output else Path(f"{stem}{SUFFIXES[fmt]}")
    if out.is_dir():
        raise UsageError(f"{out} is a folder; --format {fmt} writes a file (--format hf a folder)")
    if out.exists() and out.resolve() == src.resolve():
        raise UsageError(f"refusing to overwrite the source {src}; pass -o PATH")
    if out.exists() and not force:
        raise UsageError(f"{out} already exists; pass --force to overwrite it")
    model = loading.load(src)
    if fmt == "onnx":
        from zoo.weights.onnx_export import export_onnx

        export_onnx(model, out, input_shape=shape, opset=opset, include_transform=include_transform)
    else:
        weights.export(
            model, out, dataset=meta.get("dataset"), metrics=meta.get("metrics"),
            extra=meta.get("extra"),
        )  # fmt: skip
    click.echo(str(out))


def _export_hf(
    src: Path, output: str | None, force: bool, card_file: str | None, card: dict
) -> None:
    """``zoo export --format hf``: a folder of config.json, model.safetensors, README.md."""
    from zoo.weights import card as cards
    from zoo.weights import files as weights
    from zoo.weights.hf import export_folder

    out = Path(output) if output else Path(_default_stem(src, weights.read_metadata(src)))
    if out.exists() and out.resolve() in (src.resolve(), src.parent.resolve()):
        raise UsageError(f"refusing to write over the source {src}; pass -o DIR")
    fields = cards.read_fields(card_file)[0] if card_file else {}
    fields.update({k: v for k, v in card.items() if v})
    click.echo(str(export_folder(src, out, force=force, card=fields)))


def _default_stem(src: Path, meta: dict) -> str:
    """``MODEL-DATASET`` from the names the file pins (checked names, never a path the file
    chooses: ``model: "../../x"`` is description, not a place to write), else the source's."""
    from zoo.weights.files import read_pins

    pins = read_pins(meta, src)
    names = [pins[kind].name for kind in ("model", "dataset") if kind in pins]
    return "-".join(names) or src.stem


@click.command("fetch")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("--registry", multiple=True, help="Extra registry (dir, file:// or http(s):// URL).")
@click.option("--offline", is_flag=True, default=None, help="Serve from the cache only.")
def fetch_cmd(names: tuple[str, ...], registry: tuple[str, ...], offline: bool | None) -> None:
    """Download and verify pretrained entries (model.tag) into the cache; print their paths.

    Every name is looked up first (each registry is read once), then the files are fetched.
    An entry whose model is not installed is fetched all the same, with a warning saying what
    to install to use it.
    """
    from zoo.hub import cache
    from zoo.hub import index as hub
    from zoo.hub.entries import model_entry, qualified_name
    from zoo.registry.plugins import missing_reason

    registries = split_csv(registry)
    for entry in hub.resolve(names, registry=registries or None, offline=offline or None):
        hit = cache.is_cached(entry)
        path = cache.fetch_entry(entry, offline=offline or None)
        click.echo(f"{'cached' if hit else 'fetched'} {entry.name} ({path})", err=True)
        if model_entry(entry) is None:
            logger.warning("%s: %s", qualified_name(entry), missing_reason(entry.pin))
        click.echo(str(path))


@click.command("publish")
@click.argument("source", metavar="RUN|WEIGHTS")
@click.option("--registry", "registry", required=True, help="Registry directory to publish into.")
@click.option("--tag", required=True, help="Entry tag: the entry is named MODEL.TAG.")
@click.option("--force", is_flag=True, help="Replace an existing entry of that name.")
@click.option(
    "--license",
    "license_",
    help="License of the weights (default MIT; a model card needs it given).",
)
@click.option("--recipe", type=click.Path(dir_okay=False), help="Recipe file to copy in.")
@click.option("--summary", help="One-line description.")
@card_options
def publish_cmd(
    source: str,
    registry: str,
    tag: str,
    force: bool,
    license_: str | None,
    recipe: str | None,
    summary: str | None,
    card_file: str | None,
    intended_use: str | None,
    limitations: str | None,
    evaluation: str | None,
) -> None:
    """Copy weights into a registry directory and add their entry to its index.json.

    With --card FILE or any card option (or from an hf export folder with a README.md) a
    model card NAME.md is written beside the weights; it needs a license and an intended use.
    """
    from zoo.hub.publish import publish

    entry = publish(
        source, registry, tag, force=force, license=license_, recipe=recipe, summary=summary,
        card=card_file, intended_use=intended_use, limitations=limitations,
        evaluation=evaluation,
    )  # fmt: skip
    shown = ", ".join(f"{k}={v:.4g}" for k, v in entry.metrics.items())
    click.echo(f"published {entry.name} ({shown or 'no metrics'})", err=True)
    click.echo(entry.files[0].url)


@click.command("cache")
@click.argument("action", type=click.Choice(["list", "verify", "clear"]), default="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (list).")
def cache_cmd(action: str, as_json: bool) -> None:
    """Show (list), re-hash (verify: corrupt files are removed) or empty (clear) the cache."""
    from zoo.hub import cache

    if action == "list":
        items = cache.cached_files()
        if as_json:
            echo_json([i.to_dict() for i in items])
            return
        echo_table(
            [(i.name, i.size, i.sha256[:12], str(i.path)) for i in items],
            ["name", "bytes", "sha256", "path"],
        )
    elif action == "verify":
        total = len(cache.cached_files())
        bad = cache.verify_cache()
        for item, reason in bad:
            click.echo(f"removed {item.path} ({item.name or item.url}): {reason}", err=True)
        click.echo(f"{total - len(bad)} of {total} cached files verified")
        if bad:
            raise click.exceptions.Exit(1)
    else:
        freed = cache.clear_cache()
        click.echo(f"cleared {cache.cache_dir()} ({freed} bytes)")
