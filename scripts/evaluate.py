"""Paper-style retrieval metrics (R@1/5/10, mAP, median rank) as a markdown table.

    # two row-aligned embedding arrays (row i of each is a pair)
    python scripts/evaluate.py --queries audio.npy --gallery image.npy
    # a feature memory: sets paired by item id (or --pairs rows.txt), projected through a trained space
    python scripts/evaluate.py --memory features/ --query audio/clap --target image/clip --space owner/space
    # raw files: each file in one folder has a partner of the same name in the other
    python scripts/evaluate.py --query-folder sounds/ --target-folder photos/ --space owner/space
    # the same from a Hub dataset whose rows hold both (each row's audio and image share a name)
    python scripts/evaluate.py --query-folder hf://datasets/OWNER/NAME/test \
        --target-folder hf://datasets/OWNER/NAME/test \
        --query-column audio=audio --target-column image=image --space owner/space
    # the synthetic MCR world, trained quickly
    python scripts/evaluate.py --synthetic --epochs 10
    # zero-shot ModelNet40 (Acc@1/3/5 over the 40 classes) from its test split, any space that places
    # points and text; --corpus checks the training text for the evaluation's prompts
    python scripts/evaluate.py --protocol modelnet40 --data ModelNet40/ --space official-ex-mcr --corpus builtin
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cmcr.cli import run_reporting_errors
from cmcr.data.hub_export import local_folder
from cmcr.data.selection import modality_pairs
from cmcr.errors import InputError
from cmcr.evaluation.metrics import chance_metrics, markdown_table, retrieval_metrics
from cmcr.evaluation.protocols import evaluate_folders, evaluate_memory, evaluate_synthetic, read_pairs
from cmcr.evaluation.synthetic import WorldSpec
from cmcr.training.config import TrainConfig


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--queries", type=Path, help=".npy of query embeddings (with --gallery)")
    mode.add_argument("--memory", type=Path, help="feature memory folder (with --query and --target)")
    mode.add_argument("--query-folder", help="folder of query files, or hf://datasets/... (with --target-folder)")
    mode.add_argument("--synthetic", action="store_true", help="train and evaluate on the synthetic world")
    mode.add_argument("--protocol", choices=("modelnet40",), help="a paper protocol (with --data and --space)")
    parser.add_argument("--gallery", type=Path, help=".npy of gallery embeddings, row-aligned with --queries")
    parser.add_argument("--query", help="MODALITY/ENCODER set of the memory to query with, e.g. audio/clap")
    parser.add_argument("--target", help="MODALITY/ENCODER set of the memory to retrieve, e.g. image/clip")
    parser.add_argument("--pairs", type=Path, help="file of 'query_row target_row' lines (default: pair by item id)")
    parser.add_argument("--target-folder", help="folder of target files, or hf://datasets/...")
    for side in ("query", "target"):
        parser.add_argument(f"--{side}-column", metavar="MODALITY=NAME",
                            help=f"which column of a Hub dataset --{side}-folder holds, e.g. audio=audio "
                                 "(default: the one media column with a usual name)")
    parser.add_argument("--space", help="trained space (folder or Hub repo id) to project through")
    parser.add_argument("--profile", choices=("full", "tiny"), default="full")
    parser.add_argument("--device")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs for --synthetic")
    parser.add_argument("--size", type=int, default=5000, help="memory rows per set for --synthetic")
    parser.add_argument("--data", help="the protocol's data: the ModelNet40 folder (<class>/test/*.off, or "
                                       "modelnet40_normal_resampled with modelnet40_test.txt), local or "
                                       "hf://datasets/OWNER/NAME[@REVISION][/FOLDER] holding those files")
    parser.add_argument("--up-axis", choices=("y", "z"), default="y", help="the shapes' up axis (z: turn them upright)")
    parser.add_argument("--corpus", help="training text to check for the evaluation's prompts: a .txt/.jsonl/.csv "
                                         "file, a feature memory folder, or 'builtin' (the built-in corpus)")
    return parser.parse_args(argv)


def memory_set(text: str | None, flag: str) -> tuple[str, str]:
    parts = (text or "").split("/")
    if len(parts) != 2 or not all(parts):
        raise InputError(f"{flag} must look like MODALITY/ENCODER, e.g. audio/clap; got {text!r}.")
    return parts[0], parts[1]


def synthetic_rows(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    spec = WorldSpec(n_overlap=args.size, n_p=args.size, n_q=args.size, n_test=min(1000, args.size))
    return evaluate_synthetic(spec, TrainConfig(epochs=args.epochs, device=args.device))


def rows_for(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    if args.synthetic:
        return synthetic_rows(args)
    if args.queries:
        if not args.gallery:
            raise InputError("--queries needs --gallery.")
        queries, gallery = (np.load(path, allow_pickle=False) for path in (args.queries, args.gallery))
        return {f"{args.queries.name} → {args.gallery.name}": retrieval_metrics(queries, gallery),
                "chance": chance_metrics(len(gallery))}
    if args.memory:
        query, target = memory_set(args.query, "--query"), memory_set(args.target, "--target")
        space = None
        if args.space:
            from cmcr.models.space import UnifiedSpace

            space = UnifiedSpace.from_pretrained(args.space)
        name = f"{'/'.join(query)} → {'/'.join(target)}"
        pairs = read_pairs(args.pairs) if args.pairs else None
        return {name: evaluate_memory(args.memory, query, target, space, pairs)}
    if not args.target_folder:
        raise InputError("--query-folder needs --target-folder.")
    from cmcr.retrieval.search import load_embedder

    query, target = (local_folder(getattr(args, f"{side}_folder"), modality_pairs(
        [getattr(args, f"{side}_column")] if getattr(args, f"{side}_column") else [], f"--{side}-column"))
        for side in ("query", "target"))
    embedder = load_embedder(args.space, args.profile, args.device)
    metrics = evaluate_folders(embedder, query, target,
                               progress=lambda items: tqdm(items, desc="embedding", unit="file"))
    return {f"{Path(args.query_folder).name} → {Path(args.target_folder).name}": metrics}


def modelnet40_report(args: argparse.Namespace) -> str:
    """The Acc@1/3/5 table, and a line saying whether the training text holds the prompts."""
    from cmcr.evaluation.modelnet40 import chance_accuracy, evaluate_modelnet40, prompt_leaks, read_test_split
    from cmcr.retrieval.search import load_embedder

    if not args.data or not args.space and args.profile != "tiny":
        raise InputError("--protocol modelnet40 needs --data (the ModelNet40 folder) and --space.")
    shapes = read_test_split(local_folder(args.data))
    embedder = load_embedder(args.space, args.profile, args.device)
    metrics = evaluate_modelnet40(embedder, shapes, up_axis=args.up_axis,
                                  progress=lambda batches: tqdm(batches, desc="embedding shapes", unit="batch"))
    table = markdown_table({f"ModelNet40 zero-shot ({len(shapes)} shapes)": metrics, "chance": chance_accuracy()})
    if not args.corpus:
        return table + ("\ncorpus check: not run; pass --corpus with the space's training text to check it "
                        "for the prompts")
    leaks = prompt_leaks(corpus_lines(args.corpus))
    if not leaks:
        return table + f"\ncorpus check: none of the evaluation's prompts occur in {args.corpus}"
    return table + (f"\nWARNING: {len(leaks)} of the evaluation's prompts occur in {args.corpus} (e.g. "
                    f"{'; '.join(leaks[:3])}); a space trained on it has seen them, so these scores may be inflated")


def corpus_lines(source: str) -> list[str]:
    """The sentences of a text file, a feature memory's text items, or the built-in corpus."""
    from cmcr.data.corpus import default_corpus
    from cmcr.data.features import FeatureMemory
    from cmcr.data.sources import read_text_file

    if source == "builtin":
        return default_corpus()
    path = Path(source)
    if path.is_dir():
        return [item["text"] for item in FeatureMemory(path).items("text")]
    return [item["text"] for item in read_text_file(path)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.protocol:
        return run_reporting_errors(lambda: print(modelnet40_report(args)))
    return run_reporting_errors(lambda: print(markdown_table(rows_for(args))))


if __name__ == "__main__":
    sys.exit(main())
