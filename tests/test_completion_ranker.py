"""The completion ranker: features, fitting, loading weights beside a model, the source label."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from codemlm.completion_ranker import (
    BASE_FEATURES,
    FEATURES,
    SOURCES,
    Evidence,
    Ranker,
    fit_weights,
    primary_source,
)
from codemlm.errors import ConfigError


def test_features_read_the_evidence() -> None:
    row = dict(zip(BASE_FEATURES, Evidence("self.x", frozenset({"member", "model"}), logp=-1.5, count=3,
                                      left_match=2, distance=10.0, syntax_ok=False).vector(), strict=True))
    assert row["logp"] == -1.5 and row["unscored"] == 0.0
    assert row["src_member"] == row["src_model"] == 1.0 and row["src_name"] == 0.0
    assert row["log_count"] == pytest.approx(math.log(4))
    assert row["in_file"] == 1.0 and row["syntax_bad"] == 1.0 and row["no_alnum"] == 0.0
    far = dict(zip(BASE_FEATURES, Evidence(",", frozenset({"model"})).vector(), strict=True))
    assert far["unscored"] == 1.0 and far["in_file"] == 0.0 and far["no_alnum"] == 1.0


def test_every_feature_lands_under_its_own_name() -> None:
    # The vector is built positionally; each feature here has a value no other one has.
    row = dict(zip(BASE_FEATURES, Evidence("ab", frozenset({"line", "compose"}), logp=-2.0, count=6, left_match=7,
                                      right_match=9, distance=math.e - 1, shape="args", assigned=True, logp_min=-11.0,
                                      n_tokens=3).vector(), strict=True))
    assert row == {
        "bias": 1.0, "logp": -2.0, "unscored": 0.0,
        **{f"src_{s}": float(s in ("line", "compose")) for s in SOURCES},
        "log_count": pytest.approx(math.log(7)), "left_match": 7.0, "right_match": 9.0, "log_distance": pytest.approx(1.0),
        "in_file": 1.0, "syntax_bad": 0.0, "no_alnum": 0.0, "log_chars": pytest.approx(math.log(3)), "n_sources": 2.0,
        "assigned": 1.0, "logp_member": 0.0, "logp_args": -2.0, "logp_line": 0.0, "logp_min": -11.0, "logp_sum": -6.0,
    }


def test_fit_recovers_which_feature_predicts_the_label() -> None:
    rng = np.random.default_rng(0)
    x = np.zeros((600, len(FEATURES)))
    x[:, FEATURES.index("bias")] = 1.0
    x[:, FEATURES.index("left_match")] = rng.integers(0, 4, 600)
    x[:, FEATURES.index("log_chars")] = rng.normal(size=600)  # noise
    p = 1 / (1 + np.exp(-(2.0 * x[:, FEATURES.index("left_match")] - 4.0)))
    y = (rng.random(600) < p).astype(float)
    w = fit_weights(x, y, l2=0.1)
    assert 1.2 < w["left_match"] < 3.0
    assert abs(w["log_chars"]) < 0.5
    ranker = Ranker(w)
    good, bad = Evidence("a", frozenset({"name"}), left_match=3), Evidence("a", frozenset({"name"}))
    assert ranker.probabilities([good])[0] > ranker.probabilities([bad])[0]


def test_weights_beside_the_model_win_over_the_defaults(tmp_path: Path) -> None:
    assert Ranker.for_model_dir(tmp_path).weights == Ranker().weights
    (tmp_path / "ranker.json").write_text(json.dumps({"weights": {"bias": 3.0}}), encoding="utf-8")
    ranker = Ranker.for_model_dir(tmp_path)
    assert ranker.probabilities([Evidence("x", frozenset())])[0] == pytest.approx(1 / (1 + math.exp(-3.0)))
    (tmp_path / "ranker.json").write_text(json.dumps({"weights": {"nonsense": 1.0}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="nonsense"):
        Ranker.for_model_dir(tmp_path)
    (tmp_path / "ranker.json").write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match="ranker file"):
        Ranker.for_model_dir(tmp_path)


def test_primary_source_prefers_the_most_specific() -> None:
    assert primary_source({"name", "model"}) == "name"
    assert primary_source({"name", "analog", "continuation"}) == "analog"
    assert primary_source(set()) == "model"


def test_relative_features_compare_the_candidates_of_a_hole() -> None:
    from codemlm.completion_ranker import feature_matrix

    near = Evidence("a", frozenset({"name"}), logp=-1.0, count=5, distance=3.0)
    far = Evidence("b", frozenset({"name"}), logp=-4.0, count=1, distance=300.0)
    unscored = Evidence("c", frozenset({"name"}))
    m = {name: feature_matrix([near, far, unscored])[:, i] for i, name in enumerate(FEATURES)}
    assert m["rel_logp"].tolist() == [0.0, -3.0, 0.0]
    assert m["rel_count"][0] == 0.0 and m["rel_count"][1] < 0.0
    assert m["rel_distance"][0] == 0.0 and m["rel_distance"][1] > 0.0


def test_a_ranker_file_may_carry_weights_for_one_mode(tmp_path: Path) -> None:
    (tmp_path / "ranker.json").write_text(json.dumps({
        "weights": {"bias": 1.0}, "modes": {"model": {"weights": {"bias": -1.0}}}}), encoding="utf-8")
    both = Ranker.for_model_dir(tmp_path)
    model = Ranker.for_model_dir(tmp_path, "model")
    context = Ranker.for_model_dir(tmp_path, "context")  # no weights of its own: the top level's
    assert both.weights == context.weights == {"bias": 1.0}
    assert model.weights == {"bias": -1.0}
    (tmp_path / "ranker.json").write_text(json.dumps({"weights": {"bias": True}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="expected"):
        Ranker.from_file(tmp_path / "ranker.json")


def test_listwise_fit_ranks_the_right_candidate_first_and_stays_a_probability() -> None:
    from codemlm.completion_ranker import fit_listwise

    rng = np.random.default_rng(1)
    rows, labels, groups = [], [], []
    for hole in range(120):
        n = 8
        x = np.zeros((n, len(FEATURES)))
        x[:, FEATURES.index("bias")] = 1.0
        x[:, FEATURES.index("logp")] = rng.normal(-3.0, 1.0, n)
        x[:, FEATURES.index("log_chars")] = rng.normal(size=n)  # noise
        right = int(np.argmax(x[:, FEATURES.index("logp")] + rng.normal(0, 0.3, n)))
        y = np.zeros(n)
        if hole % 3:  # a third of the holes have no right candidate at all
            y[right] = 1.0
        rows.append(x)
        labels.append(y)
        groups.append(np.full(n, hole))
    w = fit_listwise(np.concatenate(rows), np.concatenate(labels), np.concatenate(groups), l2=0.1)
    assert w["logp"] > 0.3 and abs(w["log_chars"]) < 0.1 * w["logp"]
    ranker = Ranker(w)
    likely, unlikely = Evidence("a", frozenset({"model"}), logp=-0.5), Evidence("b", frozenset({"model"}), logp=-6.0)
    p_likely, p_unlikely = ranker.probabilities([likely, unlikely])
    assert 0.0 < p_unlikely < p_likely < 1.0


def test_token_level_model_features() -> None:
    from codemlm.completion_ranker import feature_matrix

    a = Evidence("f(x)", frozenset({"wrap"}), logp=-1.0, logp_min=-3.0, n_tokens=4)
    b = Evidence("g", frozenset({"name"}), logp=-2.0, logp_min=-2.0, n_tokens=1)
    m = feature_matrix([a, b])
    col = {name: m[:, i] for i, name in enumerate(FEATURES)}
    assert col["logp_min"].tolist() == [-3.0, -2.0]
    assert col["logp_sum"].tolist() == [-4.0, -2.0]
    assert col["top_logp"].tolist() == [1.0, 0.0]  # the best mean log-probability
    assert col["rel_logp_sum"].tolist() == [-2.0, 0.0]
