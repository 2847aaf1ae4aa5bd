"""The cross-encoder for search: options, groups, a few real training steps, and serving it."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch
from _random_start import STDLIB_PACKAGES, random_start

from codemlm.errors import CheckpointError, ConfigError
from codemlm.search_cross import SEARCH_CROSS_DIR, CrossScorer, CrossSettings, encode_pairs, has_cross_encoder
from training.config import config_from_dict
from training.contrastive import Pair
from training.cross_encoder import CrossOptions, group_metrics, validation_groups
from training.run import run

STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A random-init tiny encoder, then 40 steps of the cross task on three stdlib packages."""
    tmp = tmp_path_factory.mktemp("cross")
    repos = STDLIB_PACKAGES
    start = random_start(tmp / "start")
    config = config_from_dict({
        "task": "cross",
        "init_from": str(start),
        "optim": {"lr": 3e-3, "warmup_steps": 5, "max_steps": 40, "batch_size": 8, "schedule": "constant"},
        "trainer": {"accelerator": "cpu", "devices": 1, "val_check_interval": 0, "checkpoint_every": 0,
                    "progress": False, "out_dir": str(tmp / "run"), "log_every": 5},
        "task_options": {"repos": [str(r) for r in repos], "max_query_tokens": 16, "max_code_tokens": 48,
                         "validation_fraction": 0.3, "max_validation_pairs": 60, "validation_candidates": 8},
    })
    result = run(config)  # the "cross" task of training.run
    return {"result": result, "tmp": tmp}


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown task_options for cross"):
        CrossOptions.from_task_options({"hard_negatives": True})
    with pytest.raises(ConfigError):
        CrossOptions(lexical_negatives=0, batch_negatives=0)
    with pytest.raises(ConfigError):
        CrossOptions(lexical_negatives=5, mined_negatives=3)
    assert CrossOptions.from_task_options({"extra_repos": "pkg:x"}).extra_repos == ("pkg:x",)


def test_group_metrics_rank_candidate_zero_and_count_ties_against_it() -> None:
    metrics = group_metrics([torch.tensor([3.0, 1.0, 2.0]), torch.tensor([1.0, 2.0, 0.0]), torch.tensor([1.0, 1.0])])
    assert metrics["recall_at_1"] == pytest.approx(1 / 3)
    assert metrics["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)


def test_validation_groups_put_the_answer_first_and_never_a_same_file_code() -> None:
    pairs = [Pair(f"parse the {w} header", f"def parse_{w}(h):\n    return h.{w}", group=i // 2, kind="doc")
             for i, w in enumerate(["date", "host", "cookie", "agent", "range", "etag"])]
    groups = validation_groups(pairs, size=4)
    assert [g.codes[0] for g in groups] == [p.code for p in pairs]
    for p, g in zip(pairs, groups, strict=True):
        assert len(g.codes) == 4 and len(set(g.codes)) == 4
        same_file = {q.code for q in pairs if q.group == p.group and q.code != p.code}
        assert not same_file & set(g.codes[1:])


def test_encode_pairs_cuts_each_side_to_its_budget(trained: dict) -> None:
    from codemlm.checkpoint import load_model_dir

    tokenizer = load_model_dir(trained["result"].model_dir).tokenizer
    ids, mask = encode_pairs(tokenizer, ["a b c d e f g h i j k l m n o p", "x"], ["def f():\n    return 1" * 20, "y"],
                             6, 10)
    assert ids.shape[0] == 2 and mask[0].sum() <= 16
    row = ids[0, : int(mask[0].sum())].tolist()
    assert row[0] == tokenizer.cls_id and row[-1] == tokenizer.sep_id and row.count(tokenizer.sep_id) == 2
    assert row.index(tokenizer.sep_id) <= 5  # the query's budget includes <cls> and its <sep>
    assert int(mask[1].sum()) < int(mask[0].sum())


def test_a_few_steps_learn_to_pick_the_answer_and_the_export_serves(trained: dict) -> None:
    result = trained["result"]
    summary = result.summary
    assert summary["task"] == "cross" and summary["train_pairs"] > 100 and summary["validation_groups"] >= 20
    # A zero head ties every candidate (MRR 1/8 with ties against the answer): 40 steps of a
    # random-init tiny model already find the answer among BM25's neighbours well above that.
    assert summary["validation_after"]["mrr"] > 0.3
    assert len(summary["cross_head"]["weight"]) == 64

    model_dir = trained["tmp"] / "model"
    import shutil

    shutil.copytree(result.model_dir, model_dir / SEARCH_CROSS_DIR)
    assert has_cross_encoder(model_dir)
    scorer = CrossScorer.from_model_dir(model_dir)
    assert scorer.settings == CrossSettings(max_query_tokens=16, max_code_tokens=48)
    codes = ["def loads(s):\n    return json.decoder.decode(s)", "def emit(self, record):\n    self.stream.write(record)"]
    scores = scorer.scores("Deserialize a JSON document to a Python object.", codes)
    assert scores.shape == (2,) and np.isfinite(scores).all()
    assert scorer.scores("x", []).shape == (0,)
    # One pair scores the same alone as in a batch (padding does not leak into the pooled state).
    alone = scorer.scores("Deserialize a JSON document to a Python object.", codes[:1])
    assert alone[0] == pytest.approx(scores[0], abs=1e-4)


def test_a_broken_head_is_a_checkpoint_error(trained: dict) -> None:
    import shutil

    broken = trained["tmp"] / "broken"
    shutil.copytree(trained["result"].model_dir, broken / SEARCH_CROSS_DIR)
    config_file = broken / SEARCH_CROSS_DIR / "config.json"
    for bad in ({"weight": [1.0, 2.0]}, {"weight": "no"}, None, {"weight": [float("nan")] * 64}):
        data = json.loads(config_file.read_text())
        data["summary"]["cross_head"] = bad
        config_file.write_text(json.dumps(data).replace("NaN", "NaN"))
        with pytest.raises(CheckpointError):
            CrossScorer.from_model_dir(broken)
    data["summary"]["cross_head"] = {"weight": [0.0] * 64}
    data["summary"]["cross_rerank"] = {"weight": -1}
    config_file.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="cross_rerank"):
        CrossScorer.from_model_dir(broken)
    with pytest.raises(CheckpointError, match="no cross-encoder"):
        CrossScorer.from_model_dir(trained["tmp"])


def test_continuing_a_cross_encoder_starts_from_its_head(trained: dict) -> None:
    first = trained["result"]
    config = config_from_dict({
        "task": "cross",
        "init_from": str(first.model_dir),
        "optim": {"lr": 1e-7, "warmup_steps": 0, "max_steps": 1, "batch_size": 8, "schedule": "constant"},
        "trainer": {"accelerator": "cpu", "devices": 1, "val_check_interval": 0, "checkpoint_every": 0,
                    "progress": False, "out_dir": str(trained["tmp"] / "again"), "log_every": 1},
        "task_options": {"repos": [str(STDLIB / "json"), str(STDLIB / "email")], "max_query_tokens": 16,
                         "max_code_tokens": 48, "validation_fraction": 0.3, "validation_candidates": 8},
    })
    again = run(config).summary
    before, after = np.array(first.summary["cross_head"]["weight"]), np.array(again["cross_head"]["weight"])
    assert np.abs(before).max() > 0.1  # the first run's head is not still zero
    assert np.allclose(after, before, atol=1e-3)
    assert again["validation_after"]["mrr"] > 0.3  # and it still ranks as it did


def test_a_residual_run_starts_at_the_search_encoders_own_ranking(trained: dict) -> None:
    start = trained["tmp"] / "start"
    config = config_from_dict({
        "task": "cross",
        "init_from": str(start),
        "optim": {"lr": 1e-9, "warmup_steps": 0, "max_steps": 1, "batch_size": 8, "schedule": "constant"},
        "trainer": {"accelerator": "cpu", "devices": 1, "val_check_interval": 0, "checkpoint_every": 0,
                    "progress": False, "out_dir": str(trained["tmp"] / "residual"), "log_every": 1},
        "task_options": {"repos": [str(STDLIB / "json"), str(STDLIB / "email")], "max_query_tokens": 16,
                         "max_code_tokens": 48, "validation_fraction": 0.3, "validation_candidates": 8,
                         "residual_to": str(start)},
    })
    summary = run(config).summary
    # The head is still (almost) zero: the groups rank by the search encoder's cosine alone.
    assert summary["residual_to"] == str(start) and summary["bi_scale"] == pytest.approx(20.0, rel=1e-3)
    assert summary["validation_after"]["mrr"] == pytest.approx(summary["validation_init_bi_encoder"]["mrr"], abs=1e-3)
