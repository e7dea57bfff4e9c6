"""The trainer on a small synthetic world: it learns, its switches matter, it is reproducible
and resumable, and its configuration is validated."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cmcr.errors import InputError
from cmcr.evaluation.metrics import retrieval_metrics
from cmcr.evaluation.synthetic import WorldSpec, make_world
from cmcr.training.config import METHOD_TEMPERATURES, TrainConfig, load_config
from cmcr.training.curves import save_training_curve
from cmcr.training.enhance import aggregate
from cmcr.training.losses import paired_gap
from cmcr.training.trainer import train_connection
from tests.fixtures.training import same_weights

WORLD = WorldSpec(latent_dim=8, dim=64, hidden=64, n_concepts=32, noise_weight=0.25,
                  n_overlap=1500, n_p=1500, n_q=1500, n_test=200)
FAST = TrainConfig(hidden=64, epochs=6, batch_size=128, lr=3e-3, temperature=0.05,
                   val_fraction=0.1, patience=6, agg_chunk_size=500)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world():
    return make_world(WORLD)


def _q_to_p_r1(result, test_p, test_q, method) -> float:
    heads = result.heads
    with torch.no_grad():
        q = heads["y"](torch.from_numpy(test_q)).numpy()
        p = test_p if method == "ex-mcr" else heads["x"](torch.from_numpy(test_p)).numpy()
    return retrieval_metrics(q, p, ks=(1,))["R@1"]


@pytest.mark.parametrize("method", ["c-mcr", "ex-mcr"])
def test_training_lifts_q_to_p_retrieval_far_above_chance(world, method):
    mem, test_p, test_q = world
    result = train_connection(mem, FAST, method, valid=(test_p, test_q), progress=False)
    chance = 100 / len(test_p)
    r1 = _q_to_p_r1(result, test_p, test_q, method)
    assert r1 > 10 * chance, f"{method} q→p R@1 {r1:.1f}% vs chance {chance:.1f}%"
    history = result.history
    assert history["loss"][-1] < history["loss"][0]
    assert history["valid_q2p_r1"][-1] > 5 * chance
    assert set(result.heads) == ({"x", "y"} if method == "c-mcr" else {"y"})
    assert all(not head.training for head in result.heads.values())


def test_same_seed_gives_identical_weights_and_another_seed_does_not(world):
    mem, _, _ = world
    config = dataclasses.replace(FAST, epochs=2)
    first = train_connection(mem, config, "c-mcr", progress=False)
    second = train_connection(mem, config, "c-mcr", progress=False)
    assert same_weights(first, second)
    assert first.history == second.history
    other = train_connection(mem, dataclasses.replace(config, seed=1), "c-mcr", progress=False)
    assert not same_weights(first, other)


@pytest.mark.parametrize("method", ["c-mcr", "ex-mcr"])
def test_resume_after_a_crash_ends_with_thesame_weights(world, tmp_path, method):
    mem, _, _ = world
    config = dataclasses.replace(FAST, epochs=3)
    straight = train_connection(mem, config, method, progress=False)

    def crash_after_first_epoch(epoch, history):
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_connection(mem, config, method, state_dir=tmp_path, progress=False,
                         on_epoch_end=crash_after_first_epoch)
    resumed = train_connection(mem, config, method, state_dir=tmp_path, progress=False)
    assert same_weights(straight, resumed)
    assert resumed.history == straight.history
    with pytest.raises(InputError, match="another method or configuration"):
        train_connection(mem, dataclasses.replace(config, lr=1e-4), method, state_dir=tmp_path,
                         progress=False)


@pytest.mark.parametrize("switch", [{"semantic_consistency": False}, {"noise_cosine": 1.0},
                                    {"intra_weight": 0.0}, {"top_k": 8}, {"agg_centre": False}])
def test_each_ablation_switch_changes_training(world, switch):
    mem, _, _ = world
    config = dataclasses.replace(FAST, epochs=1)
    base = train_connection(mem, config, "c-mcr", progress=False)
    ablated = train_connection(mem, dataclasses.replace(config, **switch), "c-mcr",
                               progress=False)
    assert not same_weights(base, ablated)
    if switch in ({"semantic_consistency": False}, {"intra_weight": 0.0}):
        assert base.history["intra"][0] > 0
    if switch == {"semantic_consistency": False}:
        assert ablated.history["intra"] == [0.0]  # no pseudo pairs: nothing to align within


@pytest.mark.parametrize("method, world_change", [("ex-mcr", {}), ("c-mcr", {"latent_dim": 16})])
def test_pseudo_pairs_carry_the_connection(world, method, world_change):
    """Without semantic consistency (overlap pairs only) q→p retrieval is clearly worse: the
    pseudo pairs are what teach the projectors the p and q regions of each space. (At 8 latent
    dimensions the toy world is simple enough that C-MCR's two MLPs learn it from the overlap
    alone, seeded: 20.5 vs 20.0; with 16 they no longer do: 8.5 vs 3.5.)"""
    mem, test_p, test_q = make_world(dataclasses.replace(WORLD, **world_change)) if world_change else world
    full = train_connection(mem, FAST, method, progress=False)
    overlap_only = train_connection(mem, dataclasses.replace(FAST, semantic_consistency=False),
                                    method, progress=False)
    assert _q_to_p_r1(full, test_p, test_q, method) > _q_to_p_r1(
        overlap_only, test_p, test_q, method) + 2


def test_decoupled_ex_mcr_closes_the_leaf_gap_at_its_linear_stage(world):
    """λ acts on f1's output: with it, the leaf's overlap rows and their q̂ partners lie closer
    together after the linear stage than without it."""
    mem, _, _ = world
    o_y = torch.from_numpy(mem.o_y[:500])
    q_hat = aggregate(o_y, mem.q, FAST.agg_temperature)

    def leaf_gap(intra_weight: float) -> float:
        config = dataclasses.replace(FAST, epochs=3, intra_weight=intra_weight)
        head = train_connection(mem, config, "ex-mcr", progress=False).heads["y"]
        with torch.no_grad():
            return paired_gap(head.Head1(o_y), head.Head1(q_hat)).item()

    assert leaf_gap(1.0) < leaf_gap(0.0) - 0.02


def test_the_anchored_objective_is_another_training(world):
    mem, _, _ = world
    config = dataclasses.replace(FAST, epochs=1)
    decoupled = train_connection(mem, config, "ex-mcr", progress=False)
    anchored = train_connection(mem, dataclasses.replace(config, exmcr_objective="anchored"), "ex-mcr",
                                progress=False)
    assert not same_weights(decoupled, anchored)
    assert 0 < decoupled.history["intra"][0] < 1.5  # a share of the unpaired distance
    assert anchored.history["intra"][0] > 0


def test_the_cmcr_projector_is_the_connection_s_official_one_unless_configured(world):
    mem, _, _ = world
    config = dataclasses.replace(FAST, epochs=1)

    def kinds(memories, **change) -> set[str]:
        result = train_connection(memories, dataclasses.replace(config, **change), "c-mcr", progress=False)
        return {head.spec["kind"] for head in result.heads.values()}

    ulip_like = dataclasses.replace(mem, cmcr_projector="one-layer")  # as ULIP→CLIP's connection says
    assert kinds(ulip_like) == {"c-mcr-one-layer"}
    assert kinds(ulip_like, cmcr_projector="two-layer") == {"c-mcr"}
    assert kinds(mem) == {"c-mcr"} and kinds(mem, cmcr_projector="one-layer") == {"c-mcr-one-layer"}


@pytest.mark.parametrize("selection", ["overlap", "pseudo", "mix"])
def test_model_selection_follows_the_configured_signal(world, selection):
    mem, _, _ = world
    result = train_connection(mem, dataclasses.replace(FAST, epochs=2, selection=selection), "c-mcr",
                              progress=False)
    history = result.history
    overlap, pseudo = torch.tensor(history["val_overlap_r1"]), torch.tensor(history["val_pseudo_r1"])
    expected = {"overlap": overlap, "pseudo": pseudo, "mix": (overlap + pseudo) / 2}[selection]
    assert torch.allclose(torch.tensor(history["val_r1"]), expected)
    assert result.metrics["val_r1"] == max(history["val_r1"])


def test_early_stopping_keeps_the_best_epoch(world):
    mem, _, _ = world
    config = dataclasses.replace(FAST, epochs=40, lr=1e-7, patience=2, warmup_fraction=0.0)
    result = train_connection(mem, config, "c-mcr", progress=False)
    assert result.metrics["epochs_run"] < 40
    best = result.metrics["best_epoch"]
    assert result.metrics["val_r1"] == max(result.history["val_r1"])
    assert result.history["val_r1"][best - 1] == result.metrics["val_r1"]


@pytest.mark.parametrize("method", ["c-mcr", "ex-mcr"])
def test_an_unset_temperature_is_the_method_s_own_and_recorded_as_such(world, method):
    mem, _, _ = world
    config = dataclasses.replace(FAST, epochs=1, temperature=None)
    result = train_connection(mem, config, method, progress=False)
    assert result.config.temperature == METHOD_TEMPERATURES[method]
    pinned = dataclasses.replace(config, temperature=METHOD_TEMPERATURES[method])
    assert same_weights(result, train_connection(mem, pinned, method, progress=False))
    other = dataclasses.replace(config, temperature=0.2)
    assert not same_weights(result, train_connection(mem, other, method, progress=False))
    assert other.for_method(method).temperature == 0.2
    with pytest.raises(InputError, match="unknown method"):
        config.for_method("mcr")


def test_training_curve_png(tmp_path):
    history = {"loss": [2.0, 1.0], "inter": [1.8, 0.9], "intra": [0.2, 0.1],
               "val_r1": [10.0, 20.0]}
    path = save_training_curve(history, tmp_path / "curve.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_config_files_and_overrides(tmp_path):
    yaml_file = tmp_path / "train.yaml"
    yaml_file.write_text("epochs: 3\nlr: 1\ntop_k: 16\n")
    config = load_config(yaml_file, ["amp=false", "top_k=null", "noise_cosine=0.9"])
    assert (config.epochs, config.lr, config.top_k, config.amp) == (3, 1.0, None, False)
    assert config.noise_cosine == 0.9
    toml_file = tmp_path / "train.toml"
    toml_file.write_text("batch_size = 64\ndevice = \"cpu\"\n")
    assert load_config(toml_file).batch_size == 64


@pytest.mark.parametrize("values, message", [
    ({"epoch": 3}, "unknown training option"),
    ({"epochs": "three"}, "must be of type"),
    ({"amp": 1}, "must be of type"),
    ({"temperature": 0}, "out of range"),
    ({"val_fraction": 1.5}, "out of range"),
    ({"noise_cosine": 0}, "out of range"),
    ({"selection": "best"}, "choose one of"),
    ({"exmcr_objective": "output"}, "choose one of"),
    ({"cmcr_projector": "three-layer"}, "choose one of"),
])
def test_bad_config_values_are_input_errors(values, message):
    with pytest.raises(InputError, match=message):
        TrainConfig.from_dict(values)


def test_bad_config_file_and_memories_are_input_errors(tmp_path, world):
    broken = tmp_path / "broken.yaml"
    broken.write_text("epochs: [1,\n")
    with pytest.raises(InputError, match="cannot read config file"):
        load_config(broken)
    with pytest.raises(InputError, match="key=value"):
        load_config(None, ["epochs"])
    mem, _, _ = world
    misaligned = dataclasses.replace(mem, o_y=mem.o_y[:-1])
    with pytest.raises(InputError, match="row-aligned"):
        train_connection(misaligned, FAST, "c-mcr", progress=False)
    with pytest.raises(InputError, match="unknown method"):
        train_connection(mem, FAST, "mcr", progress=False)
