"""The ModelNet40 zero-shot protocol: both folder layouts, Acc@k by hand, the prompt-leak check, and
the evaluate script end to end with the tiny profile."""

from __future__ import annotations

import numpy as np
import pytest

from cmcr.data.corpus import default_corpus
from cmcr.errors import InputError
from cmcr.evaluation.modelnet40 import accuracy_at_k, evaluate_modelnet40, prompt_leaks, read_test_split
from cmcr.retrieval.search import load_embedder
from cmcr.retrieval.zeroshot import zero_shot
from tests.scripts import load_script

evaluate_script = load_script("evaluate")


def _cloud(seed: int, points: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((points, 3)) * rng.uniform(0.2, 1.0, 3)


def _off(path, seed: int) -> None:
    """A closed mesh (an octahedron, stretched per shape) in ModelNet's OFF format."""
    scale = np.random.default_rng(seed).uniform(0.3, 1.0, 3)
    vertices = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]]) * scale
    faces = [(0, 2, 4), (2, 1, 4), (1, 3, 4), (3, 0, 4), (2, 0, 5), (1, 2, 5), (3, 1, 5), (0, 3, 5)]
    lines = ["OFF", f"{len(vertices)} {len(faces)} 0", *(" ".join(f"{v:.4f}" for v in row) for row in vertices),
             *(f"3 {a} {b} {c}" for a, b, c in faces)]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def princeton(tmp_path):
    """<class>/{train,test}/<class>_NNNN.off, as the Princeton release ships it."""
    root = tmp_path / "ModelNet40"
    for seed, (folder, split, number) in enumerate([("airplane", "test", 627), ("airplane", "test", 628),
                                                    ("night_stand", "test", 201), ("chair", "test", 890),
                                                    ("chair", "train", 1)]):
        (root / folder / split).mkdir(parents=True, exist_ok=True)
        _off(root / folder / split / f"{folder}_{number:04d}.off", seed)
    return root


@pytest.fixture
def resampled(tmp_path):
    """modelnet40_normal_resampled: a test list and <class>/<id>.txt rows of x,y,z,nx,ny,nz."""
    root = tmp_path / "modelnet40_normal_resampled"
    ids = ["tv_stand_0268", "flower_pot_0150", "airplane_0700"]
    for seed, shape_id in enumerate(ids + ["bed_0001"]):  # bed_0001 is a training shape: not listed
        folder = root / shape_id.rsplit("_", 1)[0]
        folder.mkdir(parents=True, exist_ok=True)
        rows = np.hstack([_cloud(seed), np.zeros((64, 3))])
        np.savetxt(folder / f"{shape_id}.txt", rows, delimiter=",", fmt="%.6f")
    (root / "modelnet40_test.txt").write_text("\n".join(ids) + "\n")
    return root


def test_the_princeton_layout_gives_the_test_shapes_with_their_classes(princeton):
    shapes = read_test_split(princeton)
    assert [(shape.path.name, shape.label) for shape in shapes] == [
        ("airplane_0627.off", "airplane"), ("airplane_0628.off", "airplane"), ("chair_0890.off", "chair"),
        ("night_stand_0201.off", "night stand")]


def test_the_resampled_layout_follows_its_test_list(resampled):
    shapes = read_test_split(resampled)
    assert [(shape.path.name, shape.label) for shape in shapes] == [
        ("tv_stand_0268.txt", "tv stand"), ("flower_pot_0150.txt", "flower pot"), ("airplane_0700.txt", "airplane")]


def test_folders_that_are_not_modelnet40_are_refused_with_a_reason(tmp_path, resampled, princeton):
    with pytest.raises(InputError, match="not a folder"):
        read_test_split(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no ModelNet40 test shapes"):
        read_test_split(tmp_path / "empty")
    (princeton / "spaceship" / "test").mkdir(parents=True)
    with pytest.raises(InputError, match="not ModelNet40 classes: spaceship"):
        read_test_split(princeton)
    (resampled / "modelnet40_test.txt").write_text("airplane_0700\nairplane_0999\n")
    with pytest.raises(InputError, match="airplane_0999.txt is missing"):
        read_test_split(resampled)
    (resampled / "modelnet40_test.txt").write_text("toaster_0001\n")
    with pytest.raises(InputError, match="names no ModelNet40 class"):
        read_test_split(resampled)


def test_accuracy_at_k_counts_ranks_and_ties_count_against():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.1], [0.7, 0.2, 0.1], [0.4, 0.4, 0.0]])
    truth = [2, 0, 0, 1]  # ranks 2, 2, 1 and (a tie with class 0) 2
    assert accuracy_at_k(scores, truth, ks=(1, 2, 3)) == {"Acc@1": 25.0, "Acc@2": 100.0, "Acc@3": 100.0}


def test_prompt_leaks_finds_the_prompts_inside_sentences_and_nothing_else():
    corpus = ["There is an airplane in the scene, parked.", "A 3D model of a chair.", "a point cloud of a bedroom",
              "A chair and a table.", "a  POINT cloud model of a night stand"]
    assert prompt_leaks(corpus) == ["a 3D model of a chair.", "a point cloud model of a night stand.",
                                    "there is a airplane in the scene."]
    assert prompt_leaks(default_corpus()) == []  # the built-in corpus names the classes in other sentences


@pytest.mark.slow
def test_acc_at_k_agrees_with_zero_shot_on_the_same_files(princeton):
    embedder = load_embedder(None, profile="tiny", device="cpu")
    shapes = read_test_split(princeton)
    metrics = evaluate_modelnet40(embedder, shapes)
    named = zero_shot(embedder, "points", [shape.path for shape in shapes], top=5)
    for k in (1, 3, 5):
        hits = [shape.label in [label for label, _ in labels[:k]] for shape, labels in zip(shapes, named)]
        assert metrics[f"Acc@{k}"] == pytest.approx(100 * np.mean(hits))
    assert metrics["Acc@1"] <= metrics["Acc@3"] <= metrics["Acc@5"]


@pytest.mark.slow
def test_the_evaluate_script_prints_the_table_and_flags_a_leaky_corpus(resampled, tmp_path, capsys):
    argv = ["--protocol", "modelnet40", "--data", str(resampled), "--profile", "tiny", "--device", "cpu"]
    assert evaluate_script.main([*argv, "--corpus", "builtin"]) == 0
    out = capsys.readouterr().out
    assert "| ModelNet40 zero-shot (3 shapes) |" in out and "Acc@1 | Acc@3 | Acc@5" in out
    assert "| chance | 2.50 | 7.50 | 12.50 |" in out
    assert "none of the evaluation's prompts occur in builtin" in out and "WARNING" not in out
    leaky = tmp_path / "captions.txt"
    leaky.write_text("a photo of a dog\nA point cloud of a guitar.\nA 3D rendering of a lamp.\n")
    assert evaluate_script.main([*argv, "--corpus", str(leaky)]) == 0
    assert "WARNING: 2 of the evaluation's prompts occur in" in capsys.readouterr().out
    assert evaluate_script.main([*argv[:4], "--space", str(tmp_path / "absent")]) != 0
    assert "neither an existing folder" in capsys.readouterr().err


@pytest.mark.slow
def test_the_evaluate_script_reads_the_test_split_from_a_hub_dataset(resampled, fake_hub, capsys):
    files = {f"modelnet40_normal_resampled/{path.relative_to(resampled)}": path.read_bytes()
             for path in resampled.rglob("*") if path.is_file()}
    commit = fake_hub.add_repo("someone/modelnet40-test", files, repo_type="dataset")
    uri = "hf://datasets/someone/modelnet40-test/modelnet40_normal_resampled"
    argv = ["--protocol", "modelnet40", "--data", uri, "--profile", "tiny", "--device", "cpu"]
    assert evaluate_script.main(argv) == 0
    assert "| ModelNet40 zero-shot (3 shapes) |" in capsys.readouterr().out
    assert any(f"/resolve/{commit}/" in seen.path for seen in fake_hub.seen)
