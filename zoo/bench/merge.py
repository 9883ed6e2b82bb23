"""``zoo bench merge``: rows from several machines in one table, a column per machine.

A machine is what a row ran on: its device (``cpu``, ``cuda``), device name, host and torch
version. Rows line up on their key without the device (model, input, loss, batch size,
precision, mode, knobs), so ``resnet18 b8 infer`` on a laptop CPU and on an H100 share a line;
each machine's cell is its median ms/batch. Files of different schemas are refused.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo._util.atomic import atomic_path, write_json, write_text
from zoo._util.table import format_table
from zoo.bench.report import load_result
from zoo.bench.rows import KEY_FIELDS, SCHEMA, row_key
from zoo.errors import UsageError

__all__ = ["LINE_FIELDS", "Merged", "machine_of", "merge_files"]

#: what lines rows up across machines: the row key without the device
LINE_FIELDS = tuple(k for k in KEY_FIELDS if k != "device")


def machine_of(row: dict[str, Any], environment: dict[str, Any]) -> str:
    """``cuda NVIDIA H100 80GB HBM3 @ gpu-7, torch 2.5.1``: the machine a row ran on."""
    host = row.get("host") or environment.get("host") or "?"
    torch_version = row.get("torch_version") or environment.get("torch_version") or "?"
    name = row.get("device_name") or "?"
    return f"{row.get('device')} {name} @ {host}, torch {torch_version}"


@dataclass
class Merged:
    """The merged rows (each with its ``machine``), the machines in order, the source files."""

    rows: list[dict[str, Any]]
    machines: list[str]
    sources: list[dict[str, Any]]
    schema: Any

    def lines(self) -> list[tuple[dict[str, Any], dict[str, dict[str, Any]]]]:
        """(line key fields, machine -> row) for each line, in first-seen order."""
        out: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {}
        for row in self.rows:
            key = tuple(v for k, v in zip(KEY_FIELDS, row_key(row), strict=True) if k != "device")
            fields = {k: row.get(k) for k in LINE_FIELDS}
            out.setdefault(key, (fields, {}))[1].setdefault(row["machine"], row)
        return list(out.values())

    def table_cells(self) -> tuple[list[str], list[list[Any]]]:
        """Headers and cells: the line's fields, its GMACs, then ms/batch per machine."""
        headers = ["model", "dataset", "loss", "prec", "batch", "mode", "GMACs"]
        headers += [f"[{i}] ms/batch" for i in range(1, len(self.machines) + 1)]
        cells = []
        for fields, by_machine in self.lines():
            dataset = str(fields["dataset"])
            if fields.get("input_shape"):
                dataset += " " + "x".join(map(str, fields["input_shape"]))
            knobs = [k for k in ("compile", "channels_last") if fields.get(k)]
            if fields.get("runtime") not in (None, "torch"):
                knobs.append(str(fields["runtime"]))
            mode = " ".join([str(fields["mode"]), *knobs])
            gmacs = next((r["gmacs"] for r in by_machine.values() if r.get("gmacs")), None)
            line: list[Any] = [
                fields["model"], dataset, fields["loss"] or "-", fields["precision"],
                fields["batch_size"], mode, "" if gmacs is None else f"{gmacs:.3g}",
            ]  # fmt: skip
            for machine in self.machines:
                line.append(_cell(by_machine.get(machine)))
            cells.append(line)
        return headers, cells

    def table(self) -> str:
        """The aligned table, then the machines numbered as in the column headers."""
        headers, cells = self.table_cells()
        parts = [format_table(cells, headers)]
        parts += [f"[{i}] {m}" for i, m in enumerate(self.machines, 1)]
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A bench result document (``zoo bench compare`` and merge read it), plus the sources."""
        return {
            "schema": self.schema,
            "environment": {"merged": self.sources},
            "config": {"merged": [s["file"] for s in self.sources]},
            "machines": self.machines,
            "rows": self.rows,
            "skipped": [],
        }

    def write_json(self, path: str | os.PathLike) -> Path:
        """The merged document (atomic)."""
        return write_json(path, self.to_dict())

    def write_csv(self, path: str | os.PathLike) -> Path:
        """The table as CSV, machines spelled out in the headers (atomic)."""
        headers, cells = self.table_cells()
        headers = headers[: -len(self.machines)] + [f"ms/batch {m}" for m in self.machines]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(cells)
        return write_text(path, buf.getvalue())

    def plot(self, path: str | os.PathLike) -> Path:
        """PNG: samples/s per line, one bar per machine."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        lines = self.lines()
        height = max(3.0, 0.3 * len(lines) * max(1, len(self.machines)) + 1.5)
        fig = Figure(figsize=(8, height), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        width = 0.8 / max(1, len(self.machines))
        for j, machine in enumerate(self.machines):
            ys, xs = [], []
            for i, (_, by_machine) in enumerate(lines):
                row = by_machine.get(machine)
                if row and not row.get("error") and row.get("samples_per_s"):
                    ys.append(i + j * width)
                    xs.append(row["samples_per_s"])
            ax.barh(ys, xs, height=width, label=f"[{j + 1}] {machine}", color=f"C{j}")
        labels = [f"{f['model']} {f['mode']} {f['precision']} b{f['batch_size']}" for f, _ in lines]
        ax.set_yticks([i + 0.4 - width / 2 for i in range(len(lines))], labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("samples/s (log scale)")
        ax.set_title("Throughput per machine")
        ax.legend(fontsize=7)
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        return path


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    if row.get("error"):
        return "error"
    median = row.get("latency_ms_median")
    return "" if median is None else f"{median:.4g}"


def merge_files(paths: Sequence[str | os.PathLike]) -> Merged:
    """Read ``zoo bench --json`` files (one schema for all) and merge their rows.

    Raises:
        UsageError: fewer than one file, an unreadable file, or files of different schemas.
    """
    if not paths:
        raise UsageError("give the zoo bench --json files to merge")
    loaded = [(str(p), load_result(p)) for p in paths]
    first_path, first = loaded[0]
    for path, data in loaded[1:]:
        if data.get("schema") != first.get("schema"):
            raise UsageError(
                f"cannot merge {path} (schema {data.get('schema')}) with {first_path} "
                f"(schema {first.get('schema')}): rerun both with the same zoo"
            )
    rows: list[dict[str, Any]] = []
    machines: list[str] = []
    sources = []
    for path, data in loaded:
        environment = data.get("environment") if isinstance(data.get("environment"), dict) else {}
        sources.append({"file": path, "environment": environment})
        for row in data["rows"]:
            machine = row.get("machine") or machine_of(row, environment)
            if machine not in machines:
                machines.append(machine)
            rows.append({**row, "machine": machine})
    return Merged(rows, machines, sources, first.get("schema", SCHEMA))
