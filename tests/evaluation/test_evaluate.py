"""Retrieval metrics against hand-computed cases, and the evaluation entry points at toy sizes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cmcr.errors import InputError
from cmcr.evaluation.metrics import (
    average_precision,
    chance_metrics,
    markdown_table,
    relevant_ranks,
    retrieval_metrics,
)
from cmcr.evaluation.protocols import evaluate_memory, evaluate_synthetic, pairs_by_stem, read_pairs
from tests.paths import REPO


def _brute_force_first_ranks(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    order = np.argsort(-(queries @ gallery.T), axis=1)
    return np.array([int(np.nonzero(row == i)[0][0]) + 1 for i, row in enumerate(order)])


def test_perfect_retrieval_scores_full_marks():
    identity = np.eye(5, dtype=np.float32)
    metrics = retrieval_metrics(identity, identity)
    assert metrics == {"R@1": 100.0, "R@5": 100.0, "R@10": 100.0, "mAP": 100.0, "MedR": 1.0}


def test_reversed_retrieval_puts_every_partner_last():
    gallery = np.eye(4, dtype=np.float32)
    metrics = retrieval_metrics(-gallery, gallery)  # partner scores -1, every other item 0
    assert metrics["R@1"] == 0.0
    assert metrics["R@5"] == 100.0  # rank 4 of 4 is still inside the top 5
    assert metrics["MedR"] == 4.0
    assert metrics["mAP"] == pytest.approx(25.0)


def test_ties_count_against_the_relevant_item():
    assert relevant_ranks(np.array([0.5, 0.5, 0.2]), np.array([0])).tolist() == [2]
    assert relevant_ranks(np.array([0.5, 0.5, 0.9]), np.array([0, 1])).tolist() == [2, 3]
    collapsed = np.ones((6, 3), dtype=np.float32)  # every score equal: no better than last place
    metrics = retrieval_metrics(collapsed, collapsed)
    assert metrics["R@1"] == 0.0 and metrics["MedR"] == 6.0


def test_average_precision_of_several_relevant_items():
    ranks = relevant_ranks(np.array([0.9, 0.8, 0.7, 0.6]), np.array([3, 1]))
    assert ranks.tolist() == [2, 4]
    assert average_precision(ranks) == pytest.approx((1 / 2 + 2 / 4) / 2)
    queries = np.array([[1.0, 0.0]], dtype=np.float32)
    gallery = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    metrics = retrieval_metrics(queries, gallery, relevant=[[1, 2]])
    assert metrics["R@1"] == 0.0 and metrics["MedR"] == 2.0
    assert metrics["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2 * 100)


def test_recall_and_median_rank_match_a_brute_force_argsort():
    rng = np.random.default_rng(3)
    queries = rng.standard_normal((300, 16)).astype(np.float32)
    gallery = queries + 1.5 * rng.standard_normal((300, 16)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    ranks = _brute_force_first_ranks(queries, gallery)
    metrics = retrieval_metrics(queries, gallery)
    for k in (1, 5, 10):
        assert metrics[f"R@{k}"] == pytest.approx(np.mean(ranks <= k) * 100)
    assert metrics["MedR"] == np.median(ranks)
    assert metrics["mAP"] == pytest.approx(np.mean(1 / ranks) * 100, rel=1e-6)


def test_chance_levels_are_the_expectations_of_a_random_ranking():
    metrics = chance_metrics(3, ks=(1, 5))
    assert metrics["R@1"] == pytest.approx(100 / 3) and metrics["R@5"] == 100.0
    assert metrics["mAP"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3 * 100)
    assert metrics["MedR"] == 2.0


@pytest.mark.parametrize("queries, gallery, relevant, message", [
    (np.zeros((0, 4)), np.eye(4), None, "non-empty"),
    (np.eye(4)[:3], np.eye(4), None, "as many queries"),
    (np.eye(4)[:, :3], np.eye(4), [[0]] * 4, "dims"),
    (np.eye(4)[:2], np.eye(4), [[0], [7]], "outside"),
    (np.full((2, 2), np.nan), np.eye(2), None, "NaN"),
])
def test_unusable_inputs_get_clear_messages(queries, gallery, relevant, message):
    with pytest.raises(InputError, match=message):
        retrieval_metrics(queries, gallery, relevant)


def test_pairs_by_stem_pairs_files_and_refuses_orphans():
    assert pairs_by_stem(["a/dog.wav", "b/cat.wav"], ["cat.png", "dog.jpg", "dog.png"]) == [[1, 2], [0]]
    with pytest.raises(InputError, match="1 queries have no gallery item.*bird.wav"):
        pairs_by_stem(["bird.wav"], ["cat.png"])


def test_markdown_table_lists_every_row_with_two_decimals():
    table = markdown_table({"ours": {"R@1": 12.345, "MedR": 3.0}, "chance": {"R@1": 1.0, "MedR": 50.5}})
    assert table.splitlines() == [
        "| setting | R@1 | MedR |", "|---|---|---|", "| ours | 12.35 | 3.00 |", "| chance | 1.00 | 50.50 |"]


def test_memory_sets_are_paired_by_item_id_whatever_their_order(tmp_path):
    from cmcr.data.features import FeatureMemory

    rng = np.random.default_rng(0)
    audio = rng.standard_normal((20, 8)).astype(np.float32)
    order = rng.permutation(20)
    memory = FeatureMemory(tmp_path / "features")
    memory.write("audio", "clap", audio, items=[{"id": f"clip{i}"} for i in range(20)])
    memory.write("text", "clap", audio[order] + 0.01, items=[{"id": f"clip{i}"} for i in order])
    assert evaluate_memory(memory.root, ("audio", "clap"), ("text", "clap"))["R@1"] == 100.0


def test_memory_sets_can_be_paired_by_an_explicit_pairs_file(tmp_path):
    from cmcr.data.features import FeatureMemory

    rng = np.random.default_rng(2)
    audio = rng.standard_normal((6, 8)).astype(np.float32)
    memory = FeatureMemory(tmp_path / "features")
    memory.write("audio", "clap", audio)
    memory.write("text", "clap", audio[::-1].copy())  # row i of audio is row 5 - i of text
    (tmp_path / "pairs.txt").write_text("# query target\n0 5\n1 4\n2 0\n")
    pairs = read_pairs(tmp_path / "pairs.txt")
    metrics = evaluate_memory(memory.root, ("audio", "clap"), ("text", "clap"), pairs=pairs)
    assert metrics["R@1"] == pytest.approx(200 / 3)  # query 2's partner is listed wrongly on purpose
    (tmp_path / "bad.txt").write_text("0 1 2\n")
    with pytest.raises(InputError, match="query_row target_row"):
        read_pairs(tmp_path / "bad.txt")


def test_evaluate_script_prints_a_table_for_aligned_arrays(tmp_path):
    rng = np.random.default_rng(1)
    gallery = rng.standard_normal((50, 8)).astype(np.float32)
    np.save(tmp_path / "q.npy", gallery + 0.05 * rng.standard_normal((50, 8)).astype(np.float32))
    np.save(tmp_path / "g.npy", gallery)
    result = subprocess.run([sys.executable, "scripts/evaluate.py", "--queries", str(tmp_path / "q.npy"),
                             "--gallery", str(tmp_path / "g.npy")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "| setting | R@1 | R@5 | R@10 | mAP | MedR |"
    assert lines[2].startswith("| q.npy → g.npy | 100.00 |")
    assert lines[3].startswith("| chance | 2.00 | 10.00 | 20.00 |")


@pytest.mark.slow
def test_synthetic_evaluation_trains_and_reports_each_method_beside_chance():
    from cmcr.evaluation.synthetic import WorldSpec
    from cmcr.training.config import TrainConfig

    spec = WorldSpec(n_concepts=16, dim=16, hidden=32, n_overlap=400, n_p=400, n_q=400, n_test=100)
    rows = evaluate_synthetic(spec, TrainConfig(epochs=1, hidden=32, batch_size=128, device="cpu"))
    assert list(rows) == ["ex-mcr (q→p)", "c-mcr (q→p)", "chance"]
    assert rows["chance"] == chance_metrics(100)
    for metrics in rows.values():
        assert all(0 <= metrics[f"R@{k}"] <= 100 for k in (1, 5, 10))
        assert metrics["R@1"] <= metrics["R@5"] <= metrics["R@10"]
        assert 1 <= metrics["MedR"] <= 100
    assert "| ex-mcr (q→p) |" in markdown_table(rows)
