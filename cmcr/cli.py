"""How every command-line script reports a failure: one line on stderr and a documented exit code.

Scripts are run by people and by shell loops and CI jobs; both need the same contract from all of
them. A traceback is for bugs; a `CMCRError` is an expected failure (bad input, a missing
checkpoint, an unreachable Hub) and gets `error: <message>` plus a code a caller can branch on:

    0    success
    2    the input, configuration or a checkpoint cannot be used (argparse's usage errors too)
    3    the Hugging Face Hub cannot be reached and nothing usable is cached: retry later
    130  interrupted (Ctrl-C); finished work is kept where the script says so
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from cmcr.errors import CMCRError, HubUnavailableError

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_HUB_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130


def run_reporting_errors(body: Callable[[], int | None], interrupted: str = "interrupted") -> int:
    """Run a script's body and turn the failures we raise on purpose into exit codes.

    `interrupted` is printed on Ctrl-C: scripts that keep finished work say how to resume.
    """
    try:
        return body() or EXIT_OK
    except CMCRError as error:
        return report_error(error)
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED


def report_error(error: CMCRError) -> int:
    """Print the one `error:` line for an expected failure and return its exit code (for code
    that fails outside a body, such as an app loading its models at import)."""
    print(f"error: {error}", file=sys.stderr)
    return EXIT_HUB_UNAVAILABLE if isinstance(error, HubUnavailableError) else EXIT_ERROR
