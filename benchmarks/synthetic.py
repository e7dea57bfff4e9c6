"""Benchmark C-MCR and Ex-MCR on the synthetic MCR world (`cmcr.evaluation.synthetic`); prints one
markdown table.

    python -m benchmarks.synthetic [--set KEY=VALUE ...] [--world KEY=VALUE ...]
    python -m benchmarks.synthetic --scale 100000      # memory/time at N rows per memory
    python -m benchmarks.synthetic --sweep defaults    # each default changed in turn (benchmarks.sweeps)
    python -m benchmarks.synthetic --sweep selection   # held-out signals against the true q→p R@1
    python -m benchmarks.synthetic --sweep hubs        # aggregation weight on the top memory rows

Rows: both methods, their ablations, a least-squares text bridge, chance, and oracles trained on
true (p, q) pairs, with each row's q→p R@1 as a share of the C-MCR oracle's. Training sees only
unpaired memories; test pairs share latents.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cmcr import config as configfile
from cmcr.cli import run_reporting_errors
from cmcr.evaluation.metrics import chance_metrics, markdown_table
from cmcr.evaluation.synthetic import (SyntheticWorld, WorldSpec, connect_test_pairs, pair_recalls,
                            text_bridge)
from cmcr.training.config import TrainConfig, load_config
from cmcr.training.memories import ConnectionMemories
from cmcr.training.trainer import train_connection

from benchmarks.sweeps import defaults_sweep, hub_report, selection_sweep

ABLATIONS = {
    "C-MCR, no semantic consistency (overlap pairs only)": ("c-mcr", {"semantic_consistency": False}),
    "C-MCR, no semantic completion": ("c-mcr", {"noise_cosine": 1.0}),
    "C-MCR, no intra-MCR alignment (λ=0)": ("c-mcr", {"intra_weight": 0.0}),
    "C-MCR, uncentred aggregation (the papers' plain similarities)": ("c-mcr", {"agg_centre": False}),
    "C-MCR, uncentred aggregation and τ = 0.1 (the earlier defaults)":
        ("c-mcr", {"agg_centre": False, "temperature": 0.1}),
    "C-MCR, one-layer projectors (the official ULIP–CLIP architecture)": ("c-mcr", {"cmcr_projector": "one-layer"}),
    "Ex-MCR, anchored objective (the earlier one: λ pulls outputs onto base partners)":
        ("ex-mcr", {"exmcr_objective": "anchored"}),
    "Ex-MCR, no intra-space alignment (λ=0)": ("ex-mcr", {"intra_weight": 0.0}),
    "Ex-MCR, no semantic consistency (overlap pairs only)": ("ex-mcr", {"semantic_consistency": False}),
    "Ex-MCR, uncentred aggregation (the papers' plain similarities)": ("ex-mcr", {"agg_centre": False}),
    "Ex-MCR, uncentred aggregation and τ = 0.1 (the earlier defaults)":
        ("ex-mcr", {"agg_centre": False, "temperature": 0.1}),
}
ORACLE = "oracle: C-MCR projectors on true (p, q) pairs"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="TrainConfig override")
    parser.add_argument("--world", action="append", default=[], metavar="KEY=VALUE",
                        help="WorldSpec override, e.g. n_overlap=5000")
    parser.add_argument("--methods", default="c-mcr,ex-mcr,ablations,baselines",
                        help="comma-separated subset of: c-mcr, ex-mcr, ablations, baselines")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--scale", type=int, default=None, metavar="N",
                        help="instead: train C-MCR on N-row float16 memmaps of p and q, "
                             "report time and peak RSS")
    parser.add_argument("--scale-dir", type=Path, default=None,
                        help="keep the --scale memmaps here; files already there are reused, so "
                             "a second run measures training alone")
    parser.add_argument("--scale-overlap", type=int, default=2000, metavar="N_O",
                        help="overlap rows in --scale mode (aggregation costs N_O x N)")
    parser.add_argument("--sweep", choices=("defaults", "selection", "hubs"),
                        help="instead: one of the sweeps of benchmarks.sweeps")
    parser.add_argument("--seeds", default="0,1", help="world seeds of --sweep selection")
    return parser.parse_args(argv)


def world_spec(overrides: list[str]) -> WorldSpec:
    """A WorldSpec from `key=value` overrides, read as every config in the project is."""
    return configfile.build(WorldSpec, configfile.apply_overrides({}, overrides), "world option")


def accuracy_table(spec: WorldSpec, config: TrainConfig, methods: set[str]) -> str:
    world = SyntheticWorld(spec)
    mem = world.memories()
    test_p, test_q = world.test_pairs()
    runs = {}
    if "c-mcr" in methods:
        runs["C-MCR"] = ("c-mcr", mem, config)
    if "ex-mcr" in methods:
        runs["Ex-MCR"] = ("ex-mcr", mem, config)
    if "ablations" in methods:
        runs.update({name: (method, mem, dataclasses.replace(config, **change))
                     for name, (method, change) in ABLATIONS.items()})
    rows = {}
    if "baselines" in methods:
        oracle_p, oracle_q = world.pairs(spec.n_overlap, seed_offset=3)
        oracle = ConnectionMemories(o_x=oracle_p, o_y=oracle_q, p=mem.p, q=mem.q, x="x", y="y")
        true_pairs_only = dataclasses.replace(config, semantic_consistency=False)
        runs[ORACLE] = ("c-mcr", oracle, true_pairs_only)
        runs["oracle: Ex-MCR head on true (p, q) pairs (base frozen)"] = ("ex-mcr", oracle, true_pairs_only)
        bridge = text_bridge(mem.o_y, mem.o_x)
        rows["text bridge (least squares on overlap)"] = pair_recalls(test_p, test_q @ bridge)
    for name, (method, memories, run_config) in tqdm(runs.items(), desc="benchmark"):
        started = time.perf_counter()
        result = train_connection(memories, run_config, method, progress=False)
        rows[name] = pair_recalls(*connect_test_pairs(result.heads, method, "x", "y",
                                                      test_p, test_q))
        tqdm.write(f"{name}: {rows[name]} ({time.perf_counter() - started:.0f} s, "
                   f"best epoch {result.metrics['best_epoch']})")
    chance = chance_metrics(len(test_p), ks=(1, 5))
    rows["chance"] = {f"{way} R@{k}": chance[f"R@{k}"] for way in ("q→p", "p→q") for k in (1, 5)}
    if ORACLE in rows:
        for row in rows.values():
            row["q→p R@1 / oracle (%)"] = 100 * row["q→p R@1"] / rows[ORACLE]["q→p R@1"]
    return markdown_table(rows, title=f"method (test pairs: {len(test_p)})")


def scale_report(rows: int, overlap: int, spec: WorldSpec, config: TrainConfig,
                 folder: Path | None) -> str:
    """Train once on float16 memmaps with N-row p and q memories. Aggregation streams, so RSS
    stays near the overlap tensors plus one score block; a dense N_O×N float32 score matrix
    would need 4·N_O·N bytes."""
    spec = dataclasses.replace(spec, n_overlap=overlap, n_p=rows, n_q=rows)
    with tempfile.TemporaryDirectory(prefix="cmcr-scale-") as scratch:
        started = time.perf_counter()
        mem = _memmapped_world(SyntheticWorld(spec), folder or Path(scratch))
        written = time.perf_counter() - started
        rss_before = _peak_rss_gib()
        result = train_connection(mem, config, "c-mcr")
    dense_gib = 4 * overlap * rows / 2**30
    return (f"| {overlap:,} | {rows:,} | {spec.dim} | {written:.0f} s | {result.metrics['pseudo_seconds']:.0f} s "
            f"| {result.metrics['seconds'] - result.metrics['pseudo_seconds']:.0f} s "
            f"({result.metrics['epochs_run']} epochs) | {rss_before:.2f} GiB | "
            f"{_peak_rss_gib():.2f} GiB | {dense_gib:,.0f} GiB |")


def _memmapped_world(world: SyntheticWorld, folder: Path) -> ConnectionMemories:
    """Render the world's memories chunk by chunk straight into float16 .npy memmaps (or
    reuse the files of an earlier run with the same sizes)."""
    spec = world.spec
    sizes = {"o_x": spec.n_overlap, "o_y": spec.n_overlap, "p": spec.n_p, "q": spec.n_q}
    widths = {"o_x": spec.dim, "p": spec.dim, "o_y": spec.leaf_dim or spec.dim, "q": spec.leaf_dim or spec.dim}
    folder.mkdir(parents=True, exist_ok=True)
    existing = {role: np.load(folder / f"{role}.npy", mmap_mode="r")
                for role in sizes if (folder / f"{role}.npy").is_file()}
    if all(role in existing and existing[role].shape == (rows, widths[role])
           for role, rows in sizes.items()):
        return ConnectionMemories(**existing, x="x", y="y")
    rng = np.random.default_rng([spec.seed, 1])
    arrays = {role: np.lib.format.open_memmap(folder / f"{role}.npy", mode="w+", dtype=np.float16,
                                              shape=(rows, widths[role]))
              for role, rows in sizes.items()}
    for start in tqdm(range(0, max(sizes.values()), 65536), desc="writing memmaps"):
        stop = {role: min(start + 65536, rows) for role, rows in sizes.items()}
        count = max(0, stop["o_x"] - start)
        overlap, wording = world.latents(count, rng), world.private(count, rng)
        arrays["o_x"][start:stop["o_x"]] = world.x.render("o", overlap, wording, rng)
        arrays["o_y"][start:stop["o_y"]] = world.y.render("o", overlap, wording, rng)
        for role, mcr in (("p", world.x), ("q", world.y)):
            arrays[role][start:stop[role]] = world.render(mcr, role, max(0, stop[role] - start), rng)
    for array in arrays.values():
        array.flush()
    opened = {role: np.load(folder / f"{role}.npy", mmap_mode="r") for role in arrays}
    return ConnectionMemories(**opened, x="x", y="y")


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_reporting_errors(lambda: run(args))


def run(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(None, args.overrides)
    spec = world_spec(args.world)
    print(f"world: {spec}\nconfig: {config}\ntorch threads: {torch.get_num_threads()}")
    if args.sweep == "defaults":
        print(defaults_sweep(spec, config))
    elif args.sweep == "hubs":
        print(hub_report(spec, config))
    elif args.sweep == "selection":
        print(selection_sweep(spec, config, tuple(int(seed) for seed in args.seeds.split(","))))
    elif args.scale:
        print("| overlap rows | p, q rows | dim | write memmaps | pseudo pairs | training | peak RSS "
              "before training | peak RSS after | dense N_O×N fp32 scores would need |")
        print("|---|---|---|---|---|---|---|---|---|")
        print(scale_report(args.scale, args.scale_overlap, spec, config, args.scale_dir))
    else:
        print(accuracy_table(spec, config, set(args.methods.split(","))))


if __name__ == "__main__":
    sys.exit(main())
