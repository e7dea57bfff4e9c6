"""A run's results as JSON (written, and read back to merge runs split over device slots) and as
markdown: one table per section, and one table of every target across several runs."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cmcr.atomic import write_json
from cmcr.errors import InputError

SCHEMA_VERSION = 1


def to_markdown(result: dict[str, Any]) -> str:
    """The run as markdown: the machine, then one table per section."""
    machine = result["machine"]
    lines = [
        f"Machine: {machine['cpu']} ({machine['cpu_cores']} cores, {machine['ram_gib']} GiB RAM), "
        f"GPU: {machine['gpu'] or 'none'}; device `{machine['device']}`; {machine['torch_threads']} torch / "
        f"{machine['faiss_threads']} FAISS threads; load average {_load(machine)}; torch {machine['torch']}, "
        f"faiss {machine['faiss']}, numpy {machine['numpy']}, Python {machine['python']}. "
        f"Sizes `{result['sizes']}`; {result['seconds']:.0f} s in all.",
    ]
    for name, section in result["sections"].items():
        lines += ["", f"### {name} ({section['seconds']:.0f} s)", "",
                  "| figure | value | baseline (same run) | baseline value | speed-up | target | vs target |",
                  "|---|---|---|---|---|---|---|"]
        lines += [_markdown_row(figure) for figure in section["figures"]]
    lines += [""] + [f"- {item}" for item in result["open"]]
    return "\n".join(lines)


def _load(machine: dict[str, Any]) -> str:
    load = machine.get("load_average")
    return "unknown" if not load else f"{load[0]:.1f} (1 min)"


def _markdown_row(figure: dict[str, Any]) -> str:
    target = figure["target"]
    target_cell = "—" if target is None else f"{_number(target['value'])} {target['unit']}"
    ratio = "—" if figure["target_ratio"] is None else f"{figure['target_ratio']:.3g}×"
    note = f" ({figure['note']})" if figure["note"] else ""
    return (f"| {figure['name']} | {_with_p95(figure['value'], figure['p95'])} {figure['unit']} | "
            f"{figure['baseline_name']}{note} | {_with_p95(figure['baseline'], figure['baseline_p95'])} "
            f"{figure['unit']} | {figure['speedup']:.3g}× | {target_cell} | {ratio} |")


def _with_p95(value: float, p95: float | None) -> str:
    return _number(value) if p95 is None else f"{_number(value)} (p95 {_number(p95)})"


def _number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def targets_table(results: Sequence[dict[str, Any]]) -> str:
    """Every target across several runs (a GPU run is split over device slots): the measured
    figure, its same-run baseline and the ratio to the target."""
    lines = ["| target | figure | value | same-run baseline | vs target | met |",
             "|---|---|---|---|---|---|"]
    for result in results:
        for section in result["sections"].values():
            for figure in section["figures"]:
                if figure["target"] is None:
                    continue
                lines.append(
                    f"| {figure['target']['text']} | {figure['name']} ({result['machine']['device']}) | "
                    f"{_with_p95(figure['value'], figure['p95'])} {figure['unit']} | "
                    f"{_number(figure['baseline'])} {figure['unit']} ({figure['baseline_name']}) | "
                    f"{figure['target_ratio']:.3g}× | {'yes' if figure['target_met'] else 'no'} |")
    return "\n".join(lines)


def read_results(paths: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """Results written by earlier runs (`--out`), checked to be this tool's JSON."""
    results = []
    for path in paths:
        try:
            result = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise InputError(f"cannot read benchmark results from {path}: {error}") from None
        if not isinstance(result, dict) or result.get("schema") != SCHEMA_VERSION or "sections" not in result:
            raise InputError(f"{path} is not a results file of this benchmark (schema {SCHEMA_VERSION}).")
        results.append(result)
    return results


def write_results(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """The run's JSON; NaN stays allowed, since a ratio with a zero reference is NaN."""
    return write_json(path, result, allow_nan=True)
