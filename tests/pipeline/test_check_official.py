"""scripts/check_official.py end to end in the tiny profile (its numbers mean nothing there), and
its verdicts: within 0.05 of every official matrix passes, one matrix off fails."""

from __future__ import annotations

import numpy as np
import pytest

from cmcr.evaluation import official as selfcheck
from tests.fixtures.official import write_official_release
from tests.scripts import load_script

MATRICES = 12
TINY = ["--profile", "tiny", "--device", "cpu"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("official")
    write_official_release(folder)
    return folder


def test_tiny_profile_runs_every_official_matrix_from_local_checkpoints(checkpoints, capsys):
    code = load_script("check_official").main([*TINY, "--checkpoints", str(checkpoints), "--preprocessing"])
    out = capsys.readouterr().out
    assert code == 1  # random toy encoders cannot reproduce the official numbers
    assert "numbers mean nothing" in out and out.count("max |ours - official|") == MATRICES
    assert "official-ex-mcr: audio × 3D" in out and "official-c-mcr-ulip-clip: 3D × text" in out
    assert "0 of 12 matrices within the tolerance" in out
    cosines = [float(line.split()[-1]) for line in out.split("(cosine):")[1].strip().splitlines()[:3]]
    assert len(cosines) == 3 and all(0.9 < cosine <= 1.0 + 1e-6 for cosine in cosines)


def test_the_pinned_downloads_feed_the_check_too(official_release, capsys):
    code = load_script("check_official").main(["--profile", "tiny", "--device", "cpu"])
    assert code == 1 and capsys.readouterr().out.count("max |ours - official|") == MATRICES


def _reference_plus(offset: dict[tuple[str, str, str], float]):
    def matrices(space, features, pairs):
        name = next(name for name, table in selfcheck.REFERENCE.items() if list(table) == pairs)
        return {pair: np.asarray(selfcheck.REFERENCE[name][pair]) + offset.get((name, *pair), 0.01) for pair in pairs}
    return matrices


def test_matrices_within_the_tolerance_pass(checkpoints, monkeypatch, capsys):
    script = load_script("check_official")
    monkeypatch.setattr(script, "similarity_matrices", _reference_plus({}))
    assert script.main(["--profile", "tiny", "--device", "cpu", "--checkpoints", str(checkpoints)]) == 0
    assert "12 of 12 matrices within the tolerance" in capsys.readouterr().out


def test_one_matrix_off_by_more_than_the_tolerance_fails_and_is_named(checkpoints, monkeypatch, capsys):
    script = load_script("check_official")
    monkeypatch.setattr(script, "similarity_matrices", _reference_plus({("official-ex-mcr", "audio", "points"): 0.06}))
    assert script.main(["--profile", "tiny", "--device", "cpu", "--checkpoints", str(checkpoints)]) == 1
    out = capsys.readouterr().out
    assert "11 of 12 matrices within the tolerance; differing: official-ex-mcr: audio × 3D" in out
    assert "max |ours - official| = 0.0600   DIFFERS" in out


def test_weights_that_cannot_be_fetched_exit_3_with_the_fetch_command(offline_hub, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CMCR_RAW_ENDPOINT", offline_hub)
    monkeypatch.setattr("cmcr.hub.release_cache_dir", lambda: tmp_path)
    assert load_script("check_official").main(["--profile", "tiny", "--device", "cpu"]) == 3
    assert "python scripts/check_official.py --fetch-only" in capsys.readouterr().err


def test_missing_samples_exit_2(checkpoints, tmp_path, capsys):
    code = load_script("check_official").main([*TINY, "--checkpoints", str(checkpoints), "--samples", str(tmp_path)])
    assert code == 2 and "lacks the official samples" in capsys.readouterr().err


def test_the_comparison_flags_exactly_the_matrices_that_differ():
    ok = {pair: np.asarray(table) for pair, table in selfcheck.REFERENCE["official-c-mcr-clap-clip"].items()}
    off = {**ok, ("audio", "image"): ok[("audio", "image")] + np.eye(3) * 0.051}
    assert [c.passed for c in selfcheck.compare("official-c-mcr-clap-clip", ok)] == [True, True, True]
    assert [c.passed for c in selfcheck.compare("official-c-mcr-clap-clip", off)] == [True, True, False]
    with pytest.raises(Exception, match="the reference has"):
        selfcheck.compare("official-c-mcr-clap-clip", {("image", "text"): ok[("image", "text")]})
