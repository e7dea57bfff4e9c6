"""Generate the default gallery (procedural 3D shapes, images and sounds) into assets/.

    python -m tools.make_assets [--out assets]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from tools.procedural import make_assets

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "assets"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder to write (default: assets/)")
    args = parser.parse_args(argv)
    manifest = make_assets(args.out, progress=lambda specs: tqdm(specs, desc="assets", unit="file"))
    size = sum(path.stat().st_size for path in args.out.rglob("*") if path.is_file())
    print(f"{len(manifest['items'])} assets, {size / 1e6:.2f} MB in {args.out}")


if __name__ == "__main__":
    main()
