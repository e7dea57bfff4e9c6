"""Check the official C-MCR / Ex-MCR weights as this project runs them against the official release.

    python scripts/check_official.py                 # real weights: fetched once, then cached
    python scripts/check_official.py --fetch-only    # only download what the check needs
    python scripts/check_official.py --checkpoints DIR   # official .pt files you downloaded yourself
    python scripts/check_official.py --profile tiny --checkpoints DIR   # plumbing only (numbers mean nothing)

Reproduces the official READMEs' inference example on the three official samples (assets/official/)
for official-ex-mcr, official-c-mcr-clap-clip and official-c-mcr-ulip-clip, prints each
softmax(10 · cos) matrix beside the official one with the largest difference, and exits 0 when every
matrix is within 0.05 of it, 1 when one is not, 2 for unusable input, 3 when the weights cannot be
fetched. `--preprocessing` also prints how much the app's normalisation of an uploaded cloud moves
its ULIP embedding.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cmcr.cli import run_reporting_errors
from cmcr.models.encoders import build_encoder
from cmcr.errors import HubUnavailableError
from cmcr.models.registry import PRETRAINED
from cmcr.evaluation.official import (REFERENCE, compare, compare_preprocessing, encoder_features, read_samples,
                                     render, similarity_matrices)
from cmcr.models.space import UnifiedSpace

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "official"
EXIT_DIFFERS = 1
FETCH = "python scripts/check_official.py --fetch-only"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=["full", "tiny"], default="full",
                        help="encoders: the real weights (default) or toy ones (plumbing only)")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: best available)")
    parser.add_argument("--checkpoints", type=Path,
                        help="a folder with ex_clap.pt, ex_ulip.pt, clap_clip.pt, ulip_clip.pt (not checked "
                             "against the pinned blob ids) instead of the pinned downloads")
    parser.add_argument("--samples", type=Path, default=ASSETS, help="folder of the official sample triplets")
    parser.add_argument("--fetch-only", action="store_true", help="download the weights the check needs and stop")
    parser.add_argument("--preprocessing", action="store_true",
                        help="also compare the official 3D input with the app's normalised one")
    return parser.parse_args(argv)


def official_spaces(checkpoints: Path | None) -> dict[str, UnifiedSpace]:
    if checkpoints is None:
        return {name: UnifiedSpace.from_release(name) for name in REFERENCE}
    files = {name: [checkpoints / file.name for file in PRETRAINED[name].files] for name in REFERENCE}
    return {name: UnifiedSpace.from_official(paths, leaves=[file.leaf for file in PRETRAINED[name].files])
            for name, paths in files.items()}


def run(args: argparse.Namespace) -> int:
    try:
        spaces = official_spaces(args.checkpoints)
        encoders = {name: build_encoder(name, args.profile, device=args.device).load()
                    for name in ("clip", "clap", "ulip")}
    except HubUnavailableError as error:
        raise HubUnavailableError(f"{error} Once the network is back, fetch everything with: {FETCH}") from error
    if args.fetch_only:
        print("fetched: " + ", ".join(spaces) + " and the CLIP, CLAP and ULIP encoders (cached in HF_HOME)")
        return 0
    if args.profile == "tiny":
        print("tiny profile: toy encoders with random weights, so these numbers mean nothing.\n")
    samples = read_samples(args.samples)
    features = encoder_features(samples, encoders, {"image", "text", "audio", "points"})
    comparisons = [comparison for name, space in spaces.items()
                   for comparison in compare(name, similarity_matrices(space, features, list(REFERENCE[name])))]
    print("\n\n".join(render(comparison) for comparison in comparisons))
    if args.preprocessing:
        print("\nULIP embedding of the stored cloud vs the app's normalised upload (cosine):")
        for name, cosine in compare_preprocessing(samples, encoders["ulip"]):
            print(f"  {name:<8}{cosine:.4f}")
    failed = [comparison.title for comparison in comparisons if not comparison.passed]
    print(f"\n{len(comparisons) - len(failed)} of {len(comparisons)} matrices within the tolerance"
          + (f"; differing: {', '.join(failed)}" if failed else ""))
    return EXIT_DIFFERS if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_reporting_errors(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
