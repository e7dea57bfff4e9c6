"""Build, update, push or pull a gallery (FAISS-searchable embeddings + metadata + previews).

    # embed every image, audio and 3D file under a folder (resumable: known files are skipped)
    python scripts/build_gallery.py photos/ sounds/ --out galleries/mine --space owner/space
    python scripts/build_gallery.py --out galleries/mine --add more/ extra.wav --space owner/space
    python scripts/build_gallery.py --out galleries/mine --remove image-1a2b3c... old.png
    python scripts/build_gallery.py --out galleries/mine --rebuild --space owner/new-space
    python scripts/build_gallery.py --out galleries/mine --push-to-hub owner/my-gallery
    python scripts/build_gallery.py --pull owner/my-gallery --out galleries/copy
    python scripts/build_gallery.py hf://datasets/OWNER/NAME@main/images --out galleries/hub --space owner/space

`--profile tiny` runs offline with toy encoders (and, without --space, an untrained space).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from cmcr.cli import run_reporting_errors
from cmcr.data.hub_export import local_folder
from cmcr.data.selection import modality_pairs
from cmcr.errors import InputError
from cmcr.retrieval.gallery import (Gallery, SourceFile, caption_from_name, gallery_writer, ingest, modality_of,
                                    pull_gallery, push_gallery, scan_folder, sha256_file)
from cmcr.retrieval.search import load_embedder


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*", help="folders (or files, or hf://datasets/... dataset sources) to embed")
    parser.add_argument("--out", type=Path, required=True, help="the gallery folder")
    parser.add_argument("--add", nargs="+", default=[], help="files, folders or hf://datasets/... sources to add")
    parser.add_argument("--column", action="append", default=[], metavar="MODALITY=NAME",
                        help="column of a Hub dataset source to embed, e.g. image=jpg (default: every media column "
                             "with a usual name)")
    parser.add_argument("--remove", nargs="+", default=[], help="item ids, content hashes or files to remove")
    parser.add_argument("--rebuild", action="store_true", help="re-embed every item with the given space")
    parser.add_argument("--space", help="trained space: a folder or a Hub repo id")
    parser.add_argument("--revision", help="revision of the --space repo")
    parser.add_argument("--profile", choices=("full", "tiny"), default="full")
    parser.add_argument("--device", help="torch device for the encoders (default: GPU when present)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, help="decoding threads (default: one per core, at most 32; 0: none)")
    parser.add_argument("--full-decode", action="store_true",
                        help="decode JPEGs at full size (bit-exact pixels; slower than the default reduced decoding)")
    parser.add_argument("--push-to-hub", metavar="REPO", help="upload the gallery to this dataset repo")
    parser.add_argument("--pull", metavar="REPO", help="download a gallery dataset repo into --out")
    return parser.parse_args(argv)


def sources_of(inputs: list[str], columns: dict[str, str] | None = None) -> list[SourceFile]:
    """Folders are scanned; single files are taken with a caption from their name; a Hub dataset
    is scanned as the local folder of its files or rows (cmcr.data.hub_export)."""
    sources = []
    for path in (local_folder(text, columns) for text in inputs):
        if path.is_dir():
            sources += scan_folder(path)
        elif modality_of(path) is not None:
            sources.append(SourceFile(path, modality_of(path), caption_from_name(path)))
        else:
            raise InputError(f"'{path}' is neither a folder nor an image, audio or 3D file.")
    return sources


def remove(gallery: Gallery, names: list[str]) -> int:
    keys = [sha256_file(name) if Path(name).is_file() else name for name in names]
    removed = gallery.remove(keys)
    gallery.save()
    return removed


def embed(args: argparse.Namespace, sources: list[SourceFile]) -> None:
    embedder = load_embedder(args.space, args.profile, args.device, args.revision)
    gallery = Gallery.open_or_create(args.out, embedder.space_id, embedder.space.dim) if not args.rebuild \
        else Gallery.open(args.out)
    save_every = 256
    if args.rebuild:
        held = gallery.reset(embedder.space_id, embedder.space.dim)
        sources = [SourceFile(Path(item.source), item.modality, item.caption) for item in held] + sources
        save_every = sys.maxsize  # replace the old gallery only once the new one is complete
    report = ingest(gallery, sources, embedder, batch_size=args.batch_size, save_every=save_every,
                    workers=args.workers, reduced_decode=not args.full_decode,
                    progress=lambda items: tqdm(items, desc="embedding", unit="file"))
    print(f"added {report.added}, already present {report.duplicates}, failed {len(report.failed)}; "
          f"the gallery holds {len(gallery)} items")
    for path, reason in report.failed:
        print(f"  skipped {path}: {reason}")


def change(args: argparse.Namespace) -> None:
    if args.pull:
        gallery = pull_gallery(args.pull, args.out)
        print(f"pulled {len(gallery)} items from {args.pull} into {args.out}")
    if args.remove:
        print(f"removed {remove(Gallery.open(args.out), args.remove)} items")
    sources = sources_of(args.inputs + args.add, modality_pairs(args.column, "--column"))
    if sources or args.rebuild:
        if args.add and not Gallery.exists(args.out):
            raise InputError(f"--add needs an existing gallery at {args.out}.")
        embed(args, sources)


def run(args: argparse.Namespace) -> None:
    with gallery_writer(args.out):  # a second writer is refused, not merged into a lost update
        change(args)
    if args.push_to_hub:
        print(f"pushed: {push_gallery(args.out, args.push_to_hub)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_reporting_errors(lambda: run(args),
                                "interrupted: the saved gallery is intact; run the same command again to resume")


if __name__ == "__main__":
    sys.exit(main())
