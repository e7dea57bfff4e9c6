"""Write any space the app can serve as a Hub-ready folder, and optionally push it.

    python scripts/export_space.py official-ex-mcr --output spaces/official-ex-mcr
    python scripts/export_space.py official-ex-mcr --push-to-hub OWNER/NAME [--private] [--revision BRANCH]
    python scripts/export_space.py official-c-mcr-ulip-clip --push-to-hub OWNER/NAME

SPACE is a pretrained name (the official releases, converted: their card keeps the CC BY 4.0
attribution and the pinned source files), a folder or a Hub repo id. A failed push leaves the folder
in place and prints the command that retries it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cmcr.atomic import replace_folder
from cmcr.cli import run_reporting_errors
from cmcr.errors import InputError
from cmcr.hub import push_folder
from cmcr.models.registry import GROUPS, list_pretrained
from cmcr.models.space import UnifiedSpace


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("space", help=f"a pretrained name ({', '.join(list_pretrained())}), a folder or a Hub repo id")
    parser.add_argument("--output", type=Path, help="where to write the folder (default: spaces/<name>)")
    parser.add_argument("--push-to-hub", metavar="OWNER/NAME", help="also push the folder to this model repo")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--revision", help="branch to push to (created when missing)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    if args.space in GROUPS:
        raise InputError(f"{args.space} stands for {len(GROUPS[args.space])} spaces; export each: "
                         + ", ".join(GROUPS[args.space]))
    space = UnifiedSpace.from_pretrained(args.space)
    output = args.output or Path("spaces") / Path(args.space).name
    card = {"repo_id": args.push_to_hub}
    folder = replace_folder(output, lambda staging: space.save_pretrained(staging, model_card_kwargs=card))
    print(f"saved: {folder}")
    if args.push_to_hub:
        retry = f"python scripts/export_space.py {args.space} --output {folder} --push-to-hub {args.push_to_hub}"
        retry += " --private" * args.private + (f" --revision {args.revision}" if args.revision else "")
        url = push_folder(folder, args.push_to_hub, private=args.private, revision=args.revision,
                          commit_message=f"Upload {args.space} (scripts/export_space.py)", retry_command=retry)
        print(f"pushed: {url}")


def main(argv: list[str] | None = None) -> int:
    return run_reporting_errors(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
