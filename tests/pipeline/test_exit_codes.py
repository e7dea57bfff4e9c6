"""Every script honours the exit-code contract of `cmcr.cli`: one `error:` line, no traceback,
and a code a shell loop can branch on (2 unusable input, 3 Hub unreachable, 130 interrupted)."""

from __future__ import annotations

import importlib

import pytest

from cmcr import HubUnavailableError, InputError
from cmcr.cli import (
    EXIT_ERROR,
    EXIT_HUB_UNAVAILABLE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    run_reporting_errors,
)
from tests.scripts import load_script

_script = load_script


def _raise(error: BaseException):
    def body():
        raise error
    return body


def test_each_expected_failure_maps_to_its_code_and_one_line(capsys):
    assert run_reporting_errors(lambda: None) == EXIT_OK
    assert run_reporting_errors(lambda: 0) == EXIT_OK
    assert run_reporting_errors(_raise(InputError("no such folder"))) == EXIT_ERROR
    assert capsys.readouterr().err == "error: no such folder\n"
    assert run_reporting_errors(_raise(HubUnavailableError("offline"))) == EXIT_HUB_UNAVAILABLE
    assert capsys.readouterr().err == "error: offline\n"
    assert run_reporting_errors(_raise(KeyboardInterrupt()), "interrupted: resume later") == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "interrupted: resume later\n"


def test_bugs_are_not_dressed_up_as_input_errors():
    with pytest.raises(ZeroDivisionError):
        run_reporting_errors(lambda: 1 / 0)


@pytest.mark.parametrize("name, argv, message", [
    ("build_gallery", ["{tmp}/nothing.xyz123", "--out", "{tmp}/g", "--profile", "tiny"], "neither a folder"),
    ("evaluate", ["--query-folder", "{tmp}"], "--target-folder"),
    ("extract_features", ["--text", "{tmp}/missing.txt", "--output", "{tmp}/f", "--profile", "tiny"], "missing.txt"),
    ("train", ["--features", "{tmp}/missing", "--output", "{tmp}/o"], "does not exist"),
    ("train", ["--push-folder", "{tmp}"], "--push-to-hub"),
    ("benchmarks.__main__", ["--sizes", "tiny", "--only", "train", "--train-rows", "10", "--out", "{tmp}/b.json"],
     "at least 1,000 rows"),
    ("benchmarks.synthetic", ["--world", "dim=wide"], "must be of type int"),
])
def test_every_script_reports_unusable_input_with_code_2(name, argv, message, tmp_path, capsys):
    module = importlib.import_module(name) if "." in name else _script(name)  # benchmarks run with python -m
    code = module.main([arg.format(tmp=tmp_path) for arg in argv])
    error = capsys.readouterr().err
    assert code == EXIT_ERROR, error
    last_line = error.strip().splitlines()[-1]  # progress bars may come first
    assert last_line.startswith("error: ") and message in last_line and "Traceback" not in error
