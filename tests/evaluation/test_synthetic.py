"""The synthetic world looks like real MCRs: weak cross-modal cosines, gaps, no shortcuts."""

from __future__ import annotations

import numpy as np
import pytest

from cmcr.evaluation.synthetic import (
    SyntheticWorld,
    _RandomMap,
    WorldSpec,
    make_world,
    pair_recalls,
    text_bridge,
)

SMALL = WorldSpec(n_overlap=600, n_p=500, n_q=400, n_test=300)


def _paired_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum(axis=1).mean())


def _explained_linearly(world: SyntheticWorld) -> float:
    """Share of X's semantic content a least-squares fit from Y's explains."""
    latents = world.latents(3000, np.random.default_rng(4))
    source, target = world.y.shared(latents), world.x.shared(latents)
    fit, *_ = np.linalg.lstsq(source, target, rcond=None)
    return float(1 - ((source @ fit - target) ** 2).sum() / (target ** 2).sum())


def test_shapes_unit_rows_and_roles():
    mem, test_p, test_q = make_world(SMALL)
    assert mem.o_x.shape == mem.o_y.shape == (600, SMALL.dim)
    assert mem.p.shape == (500, SMALL.dim) and mem.q.shape == (400, SMALL.dim)
    assert test_p.shape == test_q.shape == (300, SMALL.dim)
    for array in (mem.o_x, mem.o_y, mem.p, mem.q, test_p, test_q):
        assert array.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-5)
    assert (mem.x, mem.y) == ("x", "y")


def test_paired_items_of_two_modalities_in_one_mcr_have_clip_like_cosine():
    world = SyntheticWorld(SMALL)
    rng = np.random.default_rng(0)
    latents = world.latents(2000, rng)
    o = world.x.render("o", latents, world.private(2000, rng), rng)
    p = world.x.render("p", latents, world.private(2000, rng), rng)
    paired, unpaired = _paired_cosine(o, p), _paired_cosine(o, p[::-1])
    assert 0.15 <= paired <= 0.35
    assert abs(unpaired) < 0.05
    # the modality gap: two unrelated items of one modality are closer than a true pair
    assert _paired_cosine(o, o[::-1]) > paired


def test_x_and_y_are_different_spaces():
    world = SyntheticWorld(SMALL)
    rng = np.random.default_rng(1)
    latents, wording = world.latents(1000, rng), world.private(1000, rng)
    o_x, o_y = world.x.render("o", latents, wording, rng), world.y.render("o", latents, wording, rng)
    assert abs(_paired_cosine(o_x, o_y)) < 0.1  # the same item is unrecognisable across MCRs


def test_overlap_is_row_aligned_and_extra_pairs_are_fresh():
    mem, test_p, test_q = make_world(SMALL)
    # the overlap is row-aligned: its pairs are far closer across MCRs after a linear fit
    # than shuffled rows; p and q memories are not (their rows share nothing).
    fit, *_ = np.linalg.lstsq(mem.o_y, mem.o_x, rcond=None)
    aligned = _paired_cosine(mem.o_y @ fit, mem.o_x)
    shuffled = _paired_cosine(mem.o_y @ fit, mem.o_x[::-1])
    assert aligned > shuffled + 0.2
    world = SyntheticWorld(SMALL)
    extra_p, extra_q = world.pairs(300, seed_offset=5)
    assert not np.allclose(extra_p, test_p)


def test_a_world_is_the_same_at_every_width_up_to_its_placement():
    narrow = make_world(WorldSpec(**{**SMALL.__dict__, "dim": 128}))
    wide = make_world(WorldSpec(**{**SMALL.__dict__, "dim": 768, "leaf_dim": 512}))
    assert wide[0].o_x.shape == (600, 768) and wide[0].q.shape == (400, 512) and wide[2].shape == (300, 512)
    for first, second in ((lambda w: w[0].o_x, lambda w: w[0].p), (lambda w: w[0].o_y, lambda w: w[0].q),
                          (lambda w: w[1], lambda w: w[1]), (lambda w: w[2], lambda w: w[0].o_y)):
        np.testing.assert_allclose(first(narrow) @ second(narrow).T, first(wide) @ second(wide).T, atol=1e-5)
    assert not np.allclose(narrow[0].o_x[:, :5], wide[0].o_x[:, :5])  # placed differently


def test_seeded():
    first, second = make_world(SMALL), make_world(SMALL)
    np.testing.assert_array_equal(first[0].q, second[0].q)
    np.testing.assert_array_equal(first[1], second[1])
    other = make_world(WorldSpec(**{**SMALL.__dict__, "seed": 1}))
    assert not np.allclose(first[0].q, other[0].q)


def test_text_bridge_recovers_a_linear_relation_and_pair_recalls_score_it():
    rng = np.random.default_rng(3)
    o_y = rng.standard_normal((400, 16)).astype(np.float32)
    mapping = rng.standard_normal((16, 16)).astype(np.float32)
    fitted = text_bridge(o_y, o_y @ mapping)
    np.testing.assert_allclose(fitted, mapping, atol=1e-3)
    q = rng.standard_normal((50, 16)).astype(np.float32)
    perfect = pair_recalls(q @ mapping, q @ fitted)
    assert perfect == {"q→p R@1": 100.0, "q→p R@5": 100.0, "p→q R@1": 100.0, "p→q R@5": 100.0}
    shuffled = pair_recalls(q @ mapping, (q @ fitted)[::-1])
    assert shuffled["q→p R@1"] < 10


def test_text_bridge_scores_a_world_the_same_at_every_width():
    """Rows placed in a wider space hold float32 rounding noise in the unused directions; a fit
    that inverts it (numpy's default cut-off did) scored 2 % where the 128-d fit scores 16 %."""
    spec = WorldSpec(**{**SMALL.__dict__, "n_overlap": 2000, "dim": 128})
    scores = []
    for dim in (128, 512):
        mem, test_p, test_q = make_world(WorldSpec(**{**spec.__dict__, "dim": dim}))
        scores.append(pair_recalls(test_p, test_q @ text_bridge(mem.o_y, mem.o_x)))
    for key in scores[0]:
        assert abs(scores[0][key] - scores[1][key]) <= 1.0, (key, scores)
    assert scores[1]["q→p R@5"] > 5 * 5 / SMALL.n_test * 100  # the bridge carries real signal here


def test_modality_twist_turns_content_away_and_leaves_the_untwisted_world_as_it_was():
    plain = SyntheticWorld(SMALL)
    assert plain.x.twist is None and plain.y.twist is None  # no rotation drawn: every other draw as before
    cosines = []
    for twist in (0.0, 1.0):
        world = SyntheticWorld(WorldSpec(**{**SMALL.__dict__, "modality_twist": twist}))
        rng = np.random.default_rng(0)
        latents = world.latents(2000, rng)
        o = world.x.render("o", latents, world.private(2000, rng), rng)
        p = world.x.render("p", latents, world.private(2000, rng), rng)
        cosines.append(_paired_cosine(o, p))
    assert cosines[1] < cosines[0] - 0.05


def test_map_gain_makes_the_maps_less_linear():
    """A linear fit of one random map by another of the same latent explains less of it at a
    higher gain (tanh saturates): the knob the text bridge's strength follows."""
    explained = [_explained_linearly(SyntheticWorld(WorldSpec(**{**SMALL.__dict__, "map_gain": gain})))
                 for gain in (1.5, 5.0)]
    assert explained[1] < explained[0] - 0.05


def test_leaf_hermite_hides_the_linear_relation_between_mcrs_but_not_the_one_inside_y():
    """Hermite features of the latent are uncorrelated with any linear function of it, so a linear
    fit of X's semantic content from Y's explains far less; inside Y a true o–q pair keeps a
    CLIP-like cosine, which is what aggregation reads."""
    assert type(SyntheticWorld(SMALL).y.shared) is _RandomMap  # the default world keeps its plain map
    explained = []
    for share in (0.0, 1.0):
        world = SyntheticWorld(WorldSpec(**{**SMALL.__dict__, "leaf_hermite": share}))
        explained.append(_explained_linearly(world))
        rng = np.random.default_rng(0)
        latents = world.latents(2000, rng)
        o = world.y.render("o", latents, world.private(2000, rng), rng)
        q = world.y.render("q", latents, world.private(2000, rng), rng)
        assert 0.15 <= _paired_cosine(o, q) <= 0.4
        assert _paired_cosine(o, q) > _paired_cosine(o, q[::-1]) + 0.1
    assert explained[1] < explained[0] - 0.3
    with pytest.raises(ValueError, match="leaf_hermite"):
        SyntheticWorld(WorldSpec(**{**SMALL.__dict__, "leaf_hermite": 1.5}))
