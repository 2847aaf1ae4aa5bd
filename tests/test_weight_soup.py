"""Weight soups of encoders, and the rerank grid's second opinion on another library's docstrings."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest
import torch
from test_search import tiny_model_dir  # noqa: F401  (fixture: a real tiny model directory)

from codemlm.checkpoint import load_model_dir, save_model_dir
from codemlm.config import ModelConfig
from codemlm.errors import CheckpointError
from codemlm.model import CodeEncoder
from codemlm.search_rerank import SEARCH_ENCODER_DIR
from training.weight_soup import average, greedy_soup, main, save_soup


def _variant(base: Path, out: Path, seed: int, **shape: int) -> Path:
    loaded = load_model_dir(base)
    torch.manual_seed(seed)
    config = ModelConfig.from_preset("tiny", vocab_size=loaded.tokenizer.vocab_size, **shape)
    return save_model_dir(out, CodeEncoder(config), loaded.tokenizer, summary={"seed": seed})


def test_the_soup_is_the_mean_and_refuses_other_shapes(tiny_model_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    a, b = (load_model_dir(_variant(tiny_model_dir, tmp_path / f"m{s}", s)) for s in (1, 2))
    mean = average([a, b])
    name = "embed.weight" if "embed.weight" in mean else next(iter(mean))
    assert torch.allclose(mean[name], (a.model.state_dict()[name] + b.model.state_dict()[name]) / 2)
    soup = load_model_dir(save_soup(tmp_path / "soup", [a, b]))
    assert soup.summary["soup"] == [str(a.path), str(b.path)]
    assert torch.allclose(soup.model.state_dict()[name], mean[name])
    wide = load_model_dir(_variant(tiny_model_dir, tmp_path / "wide", 3, n_layers=3))
    with pytest.raises(CheckpointError, match="another shape"):
        average([a, wide])
    assert main([str(a.path), str(wide.path), "--out", str(tmp_path / "bad")]) == 1
    assert not (tmp_path / "bad").exists()


def test_greedy_keeps_only_what_improves_the_score(tiny_model_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    models = [load_model_dir(_variant(tiny_model_dir, tmp_path / f"m{s}", s)) for s in (1, 3, 2)]
    target = models[1].model.state_dict()

    def closeness(path: Path) -> float:  # higher when the soup is nearer model 3's weights
        state = load_model_dir(path).model.state_dict()
        return -sum(float((state[k] - target[k]).norm()) for k in target)

    chosen, best = greedy_soup(models, closeness, tmp_path / "work", log=lambda line: None)
    # the mean of 1 and 3 is nearer 3 than 1 alone; adding 2 pulls it away again
    assert [m.path for m in chosen] == [models[0].path, models[1].path]
    assert best > closeness(tmp_path / "work" / "soup-0")


def test_the_second_opinion_builds_its_set_from_another_library(tiny_model_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    from training.search_encoder import rerank_grid

    loaded = load_model_dir(tiny_model_dir)
    save_model_dir(tiny_model_dir.parent / "enc" / SEARCH_ENCODER_DIR, loaded.model, loaded.tokenizer,
                   summary={"task": "contrastive"})
    library = Path(sysconfig.get_paths()["stdlib"]) / "json"
    grid = rerank_grid(tiny_model_dir, tiny_model_dir.parent / "enc" / SEARCH_ENCODER_DIR, [0.0, 2.0], [5],
                       tmp_path / "work", library)
    assert set(grid) == {(0.0, 5), (2.0, 5)} and all(0.0 <= v <= 1.0 for v in grid.values())
    built = {p.name for p in (tmp_path / "work" / "validation" / "repo").rglob("*.py")}
    assert built and built <= {p.name for p in library.glob("*.py")}
