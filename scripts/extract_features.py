"""Embed folders of images, audio and 3D files, text files and Hub datasets into a feature memory.

    python scripts/extract_features.py --images DIR --audio DIR --points DIR --text FILE \
        --output features/ --profile tiny|full [--num-workers 8] [--shard-size 1024]
    python scripts/extract_features.py --images hf://datasets/OWNER/NAME@main/data --image-column image \
        --rows image=50000 --seed 0 --output features/

    # several GPUs: every rank embeds every WORLD_SIZE-th shard, rank 0 merges at the end
    torchrun --nproc-per-node 8 scripts/extract_features.py --images DIR ... --output features/

Text files: .txt (one text per line), .jsonl (a "text" field) or .csv (a "text" column, or
--text-column); `--corpus N` adds N sentences of the built-in corpus. Folders are searched
recursively by file extension. Any source may be a Hub dataset,
hf://datasets/OWNER/NAME[@REVISION][/FOLDER, FILE or GLOB] (parquet, webdataset tars or plain
files; --<modality>-column picks the column), read at the commit the revision resolves to, which
the manifest records. --rows caps a source's rows (a seeded subsample). Unreadable files and
rows are skipped and listed in OUT/skipped.jsonl. Re-running resumes: finished shards are kept,
and a memory already built from the same sources, weights and settings is reused as it is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cmcr.data.corpus import default_corpus
from cmcr.cli import run_reporting_errors
from cmcr.data.extract import Rank, extract
from cmcr.data.merge import finalise
from cmcr.data.plan import ExtractOptions
from cmcr.data.selection import modality_pairs
from cmcr.data.sources import SourceOptions, collect_sources
from cmcr.models.registry import MODALITIES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", action="append", default=[], help="text file or hf://datasets/... (repeatable)")
    parser.add_argument("--corpus", type=int, metavar="N", help="add N sentences of the built-in corpus")
    parser.add_argument("--images", help="folder of images, or hf://datasets/...")
    parser.add_argument("--audio", help="folder of audio files, or hf://datasets/...")
    parser.add_argument("--points", help="folder of 3D files (meshes or point clouds), or hf://datasets/...")
    for modality in MODALITIES:
        parser.add_argument(f"--{modality}-column", metavar="NAME",
                            help=f"{modality} column (csv / parquet column, webdataset member extension)")
    parser.add_argument("--rows", action="append", default=[], metavar="MODALITY=N",
                        help="at most N rows of each source of MODALITY (repeatable), e.g. image=50000")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --rows subsample (-1: the first rows)")
    parser.add_argument("--output", type=Path, required=True, help="feature memory folder")
    parser.add_argument("--profile", choices=("full", "tiny"), default="full")
    parser.add_argument("--shard-size", type=int, default=ExtractOptions.shard_size)
    parser.add_argument("--batch-size", type=int, default=ExtractOptions.batch_size,
                        help="items decoded and embedded per step")
    parser.add_argument("--num-workers", type=int, default=ExtractOptions.num_workers,
                        help="decoding worker processes")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: the GPU of LOCAL_RANK, else cpu)")
    parser.add_argument("--dtype", choices=("float16", "float32"), default=ExtractOptions.dtype)
    parser.add_argument("--num-points", type=int, default=ExtractOptions.num_points)
    parser.add_argument("--finalise", action="store_true",
                        help="only merge finished shards (after a multi-rank run without torchrun)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_reporting_errors(
        lambda: run(args), "interrupted: finished shards are kept; run the same command again to resume")


def run(args: argparse.Namespace) -> None:
    options = ExtractOptions(profile=args.profile, shard_size=args.shard_size, batch_size=args.batch_size,
                             num_workers=args.num_workers, device=args.device, dtype=args.dtype,
                             num_points=args.num_points)
    limits = modality_pairs(args.rows, "--rows", count=True)
    seed = None if args.seed < 0 else args.seed
    reading = {m: SourceOptions(getattr(args, f"{m}_column"), limits.get(m), seed) for m in MODALITIES}
    sources = collect_sources(text=args.text, texts=default_corpus(args.corpus) if args.corpus else None,
                              images=args.images, audio=args.audio, points=args.points, options=reading)
    if args.finalise:
        report = finalise(sources, args.output, options)
    else:
        rank = Rank.from_env()
        report = extract(sources, args.output, options, rank=rank)
        if not report.finalised and not report.up_to_date and rank.rank == 0:
            print("shards written; when every rank is done, merge with the same arguments plus --finalise")
    print(report.summary())


if __name__ == "__main__":
    sys.exit(main())
