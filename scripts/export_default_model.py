"""Export a trained model directory as the shipped default model, with its card and learning curve.

    python scripts/export_default_model.py runs/compact-spans/model codemlm/default_model \
        --runs runs/compact runs/compact-spans --data data/default8k \
        [--heldout DIR ...] [--search-repo DIR] [--infill-limit N] [--force]
    python scripts/export_default_model.py --refresh-search codemlm/default_model [--search-note TEXT]

Stores float16 weights, evaluates the exported directory on held-out code (masked-token
accuracy with ``codemlm eval mlm``'s protocol, the infill cases, the search cases when their
repository is present) and writes MODEL_CARD.md with the data manifest, the commands, the
cumulative tokens and steps of every phase, and ``learning_curve.svg`` (loss and accuracy
against tokens). It refuses to replace the shipped model with one that scores lower on the
held-out masked-token accuracy, unless ``--force``.

``--refresh-search`` is for a new search encoder or cross-encoder alone (``python -m
training.search_encoder`` or ``training.search_cross --model-dir`` installed it): the weights
and the MLM are untouched; the card's search encoder and cross-encoder entries and held-out
search figures are measured again and the card is rewritten, its
training phases, curve and other metrics kept as they were.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from codemlm.checkpoint import load_model_dir, read_model_summary, render_model_card, save_model_dir
from codemlm.eval_infill import evaluate_infill
from codemlm.eval_mlm import evaluate_mlm

ROOT = Path(__file__).resolve().parents[1]
INFILL_CASES = ROOT / "benchmarks/data/infill_cases.jsonl"
SEARCH_CASES = ROOT / "benchmarks/data/search_cases.jsonl"
CACHE = Path.home() / ".cache/codemlm/bench"
# Held-out code for masked-token accuracy (benchmarks/data/HELDOUT.md): boltons 25.0.0 (Python)
# and dayjs 1.11.13's ES modules (JavaScript), unpacked by benchmarks/fetch_heldout_mlm.sh.
# Files fitted to one model's outputs (completion ranker, static search table, the search
# encoder, the second search encoder and the cross-encoder: directories, codemlm/search_rerank.py,
# codemlm/search_cross.py).
COMPANIONS = ("ranker.json", "static.safetensors", "search_encoder", "search_encoder2", "search_cross")
DEFAULT_HELDOUT = [CACHE / "heldout_mlm/boltons", CACHE / "heldout_mlm/dayjs"]


def copy_companion(source: Path, target: Path) -> None:
    """Replace ``target`` with ``source`` (a file or a directory); remove it when ``source`` is absent."""
    if target.is_dir():
        shutil.rmtree(target)
    elif target.is_file():
        target.unlink()
    if source.is_dir():
        shutil.copytree(source, target)
    elif source.is_file():
        shutil.copy2(source, target)


def reranker_summary(path: Path, settings_key: str) -> dict[str, Any] | None:
    """A reranking companion's settings (``settings_key``: ``search_rerank`` for the search
    encoder, ``cross_rerank`` for the cross-encoder) and where they were chosen, for the card."""
    if not (path / "config.json").is_file():
        return None
    summary = read_model_summary(path)
    return {"directory": path.name, "rerank": summary.get(settings_key),
            "validation": summary.get(f"{settings_key}_validation"), "steps": summary.get("steps"),
            "command": summary.get("command")}


def static_table_summary(path: Path) -> dict[str, Any] | None:
    """Where the search side's static table came from (its own metadata), for the card."""
    if not path.is_file():
        return None
    from codemlm.static_embedder import read_static_metadata

    meta = read_static_metadata(path)
    keep = ("teacher", "method", "text_form", "head_repeat", "dims", "training_chunks", "training_queries", "dense_weight",
            "validation_set")
    return {"file": path.name, **{key: meta[key] for key in keep if key in meta}}


def read_curve(run_dir: Path) -> list[dict[str, float]]:
    """Rows of the run's Lightning CSV log (the newest version), numbers only."""
    logs = sorted((run_dir / "logs").glob("version_*/metrics.csv"))
    if not logs:
        return []
    rows = []
    with logs[-1].open(newline="") as f:
        for row in csv.DictReader(f):
            rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
    return rows


def curve_points(runs: list[Path]) -> dict[str, list[tuple[float, float]]]:
    """(cumulative tokens, value) per series across the phases, in order."""
    series: dict[str, list[tuple[float, float]]] = {"train/loss": [], "train/acc": [], "val/loss": [], "val/acc": []}
    offset = 0.0
    for run in runs:
        last_tokens = 0.0
        for row in read_curve(run):
            tokens = row.get("train/tokens", last_tokens)
            last_tokens = max(last_tokens, tokens)
            for name in series:
                if name in row:
                    series[name].append((offset + tokens, row[name]))
        offset += last_tokens
    return series


def render_svg(series: dict[str, list[tuple[float, float]]], boundaries: list[float]) -> str:
    """Two panels (loss, accuracy) against tokens seen; dashed lines mark where a phase began."""
    width, height, pad = 720, 300, 48
    panels = [("loss", ["train/loss", "val/loss"]), ("masked-token accuracy", ["train/acc", "val/acc"])]
    colors = {"train": "#1f77b4", "val": "#d62728"}
    all_x = [x for pts in series.values() for x, _ in pts] or [1.0]
    x_max = max(all_x) or 1.0  # a run that logged no tokens (a search task) plots at x = 0
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height * 2}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height * 2}" fill="white"/>']
    for index, (title, names) in enumerate(panels):
        top = index * height
        values = [y for n in names for _, y in series[n]] or [0.0, 1.0]
        y_min, y_max = min(values), max(values)
        y_max = y_max if y_max > y_min else y_min + 1.0

        def px(x: float) -> float:
            return pad + (width - 2 * pad) * x / x_max

        def py(y: float, top: int = top, y_min: float = y_min, y_max: float = y_max) -> float:
            return top + height - pad + (pad * 2 - height) * (y - y_min) / (y_max - y_min)

        out.append(f'<text x="{width / 2}" y="{top + 20}" text-anchor="middle">{title} against training tokens</text>')
        out.append(f'<line x1="{pad}" y1="{top + height - pad}" x2="{width - pad}" y2="{top + height - pad}" stroke="black"/>')
        out.append(f'<line x1="{pad}" y1="{top + pad}" x2="{pad}" y2="{top + height - pad}" stroke="black"/>')
        for frac in (0.0, 0.5, 1.0):
            y = y_min + frac * (y_max - y_min)
            out.append(f'<text x="{pad - 4}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
            x = frac * x_max
            out.append(f'<text x="{px(x):.1f}" y="{top + height - pad + 16}" text-anchor="middle">{x / 1e6:.0f}M</text>')
        for boundary in boundaries:
            out.append(f'<line x1="{px(boundary):.1f}" y1="{top + pad}" x2="{px(boundary):.1f}" y2="{top + height - pad}" '
                       'stroke="gray" stroke-dasharray="4 4"/>')
        for name in names:
            points = series[name]
            if not points:
                continue
            split = name.split("/")[0]
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
            out.append(f'<polyline fill="none" stroke="{colors[split]}" stroke-width="1.5" points="{path}"/>')
        for row, split in enumerate(("train", "val")):
            out.append(f'<text x="{width - pad - 80}" y="{top + pad + 14 * row}" fill="{colors[split]}">{split}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def heldout_accuracy(model_dir: Path, paths: list[Path]) -> dict[str, Any] | None:
    present = [p for p in paths if p.exists()]
    if not present:
        return None
    result = evaluate_mlm(load_model_dir(model_dir), present, seq_len=256).to_dict()
    result["paths"] = [str(p) for p in present]
    return result


def heldout_search(model_dir: Path, search_repo: Path) -> dict[str, Any]:
    """Held-out search figures of ``model_dir`` (without and with its search encoder), when the
    held-out repository copy is present; empty otherwise."""
    if not search_repo.is_dir():
        return {}
    from codemlm.eval_search import evaluate_search
    from codemlm.search_rerank import EncoderReranker, has_search_encoder

    keep = ("cases", "mode", "mrr", "recall_at_1", "recall_at_10")
    found = evaluate_search(search_repo, SEARCH_CASES, model_dir=str(model_dir))
    out: dict[str, Any] = {"search_heldout": {k: found[k] for k in keep if k in found}}
    if has_search_encoder(model_dir):
        reread = evaluate_search(search_repo, SEARCH_CASES, model_dir=str(model_dir),
                                 reranker=EncoderReranker.from_model_dir(model_dir))
        out["search_heldout_reranked"] = {k: reread[k] for k in (*keep, "encoder_rerank", "second_rerank", "cross_rerank")
                                          if k in reread}
    return out


def card_status(summary: dict[str, Any]) -> str:
    """The card's first lines: tokens, steps, hardware and the headline held-out figures."""
    cumulative, metrics = summary.get("cumulative") or {}, summary.get("metrics") or {}
    hardware = summary.get("hardware")
    spent = (f"{cumulative['gpu_minutes']} minutes on {hardware or 'one GPU'}" if "gpu_minutes" in cumulative
             else f"{cumulative.get('cpu_hours', 0.0)} hours on {hardware or '2 CPU cores'}")
    acc = (metrics.get("heldout_mlm") or {}).get("accuracy")
    overall = (metrics.get("infill_heldout") or {}).get("overall") or {}
    infill = (f"infill EM@1 {overall['em_at_1']:.3f}, EM@5 {overall['em_at_5']:.3f}" if "em_at_1" in overall
              else "infill not measured")
    return (
        f"> **{cumulative.get('tokens', 0) / 1e6:.1f} M training tokens, {cumulative.get('steps', 0):,} steps, "
        f"{spent}.** Held-out masked-token accuracy "
        f"{acc if acc is not None else 'not measured'} (15% of tokens masked, code it never saw); "
        f"{infill}.\n\n"
        "![loss and accuracy against training tokens](learning_curve.svg)\n\n"
    )


def refresh_search(model_dir: Path, search_repo: Path, note: str | None) -> int:
    """Rewrite ``model_dir``'s card for the search encoder installed in it. The MLM's weights are
    written back as they were read (float16 to float32 and back is exact)."""
    loaded = load_model_dir(model_dir)
    summary = dict(loaded.summary)
    encoder = reranker_summary(model_dir / "search_encoder", "search_rerank")
    if encoder is not None and note:
        encoder["note"] = note
    summary["search_encoder"] = encoder
    summary["search_encoder2"] = reranker_summary(model_dir / "search_encoder2", "search_rerank")
    summary["search_cross"] = reranker_summary(model_dir / "search_cross", "cross_rerank")
    metrics = {k: v for k, v in (summary.get("metrics") or {}).items()
               if k not in ("search_heldout", "search_heldout_reranked")}
    metrics.update(heldout_search(model_dir, search_repo))
    summary["metrics"] = metrics
    save_model_dir(model_dir, loaded.model, loaded.tokenizer, summary=summary,
                   card=card_status(summary) + render_model_card(loaded.config, summary), dtype="float16")
    print(json.dumps({k: metrics[k] for k in ("search_heldout", "search_heldout_reranked") if k in metrics}, indent=2))
    print(f"export: refreshed {model_dir}'s card and summary for its search encoder", file=sys.stderr)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, nargs="?", help="the trained model directory (the last phase's)")
    parser.add_argument("out", type=Path, nargs="?", help="where the shipped model goes")
    parser.add_argument("--runs", type=Path, nargs="+", help="the run directories, in order")
    parser.add_argument("--data", type=Path, help="the data directory trained on")
    parser.add_argument("--refresh-search", type=Path, metavar="MODEL_DIR",
                        help="only rewrite MODEL_DIR's card for its (new) search encoder")
    parser.add_argument("--search-note", help="with --refresh-search: how the encoder came to be, for the card")
    parser.add_argument("--heldout", type=Path, nargs="*", default=DEFAULT_HELDOUT)
    parser.add_argument("--search-repo", type=Path, default=CACHE / "search_heldout")
    parser.add_argument("--infill-limit", type=int, default=None)
    parser.add_argument("--hardware", help="what it trained on, for the card (e.g. 'one NVIDIA H200'; "
                        "default: '2 CPU cores', or 'one GPU' for GPU phases)")
    parser.add_argument("--force", action="store_true", help="ship even if it scores below the shipped model")
    parser.add_argument("--previous-accuracy", type=float,
                        help="the shipped model's held-out accuracy, measured before with the same files and "
                        "seed (`codemlm eval mlm`); skips re-evaluating it")
    args = parser.parse_args()
    if args.refresh_search is not None:
        if args.source or args.out or args.runs or args.data:
            parser.error("--refresh-search takes no other model directory, --runs or --data")
        if not (args.refresh_search / "config.json").is_file():
            parser.error(f"{args.refresh_search} is not a model directory (no config.json)")
        return refresh_search(args.refresh_search, args.search_repo, args.search_note)
    if args.source is None or args.out is None or not args.runs or args.data is None:
        parser.error("source, out, --runs and --data are required (or --refresh-search MODEL_DIR)")

    trained = load_model_dir(args.source)
    phases = []
    for run in args.runs:
        ran = read_model_summary(run / "model")
        config = ran.get("config") or {}
        phases.append({"run": str(run), "command": ran.get("command"), "steps": ran.get("steps"),
                       "tokens": ran.get("tokens"), "seconds": ran.get("seconds"),
                       "init_from": ran.get("init_from"), "masking": config.get("masking", {}).get("strategy"),
                       "accelerator": config.get("trainer", {}).get("accelerator", "cpu"),
                       "metrics": ran.get("metrics"),
                       **({"note": ran["note"]} if ran.get("note") else {})})
    # Continuing an earlier shipped model (INIT_FROM): its cumulative count carries over.
    carried = {"tokens": 0, "steps": 0, "cpu_hours": 0.0}
    first_init = phases[0]["init_from"]
    if first_init:
        earlier = read_model_summary(first_init).get("cumulative") or {}
        carried = {"tokens": int(earlier.get("tokens", 0)), "steps": int(earlier.get("steps", 0)),
                   "cpu_hours": float(earlier.get("cpu_hours", 0.0))}
    on_gpu = [p for p in phases if p["accelerator"] in ("gpu", "cuda")]
    cumulative = {
        "tokens": carried["tokens"] + sum(int(p["tokens"] or 0) for p in phases),
        "steps": carried["steps"] + sum(int(p["steps"] or 0) for p in phases),
        "cpu_hours": round(carried["cpu_hours"] + sum(float(p["seconds"] or 0) for p in phases if p not in on_gpu) / 3600, 2),
    }
    if on_gpu:
        cumulative["gpu_minutes"] = round(sum(float(p["seconds"] or 0) for p in on_gpu) / 60, 1)
    data_stats = json.loads((args.data / "stats.json").read_text()) if (args.data / "stats.json").is_file() else {}

    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model"
        save_model_dir(staged, trained.model, trained.tokenizer, summary={}, dtype="float16")
        for companion in COMPANIONS:  # evaluate exactly what ships
            copy_companion(args.source / companion, staged / companion)
        new_acc = heldout_accuracy(staged, args.heldout)
        if args.previous_accuracy is not None:
            old_acc: dict[str, Any] | None = {"accuracy": args.previous_accuracy, "measured": "before, same files and seed"}
        else:
            old_acc = heldout_accuracy(args.out, args.heldout) if (args.out / "config.json").is_file() else None
        if new_acc and old_acc and new_acc["accuracy"] <= old_acc["accuracy"] and not args.force:
            print(f"export: the new model ({new_acc['accuracy']:.4f}) does not beat the shipped one "
                  f"({old_acc['accuracy']:.4f}) on held-out masked-token accuracy; nothing replaced (--force ships it)",
                  file=sys.stderr)
            return 1
        metrics: dict[str, Any] = {"heldout_mlm": new_acc, "previous_model_heldout_mlm": old_acc}
        infill = evaluate_infill(INFILL_CASES, model_dir=str(staged), limit=args.infill_limit)
        metrics["infill_heldout"] = {k: infill[k] for k in ("overall", "by_kind") if k in infill}
        metrics.update(heldout_search(staged, args.search_repo))

    summary: dict[str, Any] = {
        "trained_on": "Python standard library + flask, werkzeug, jinja2, pygments, packaging, lodash-es, express, rxjs",
        "data": {
            "sources": "CPython 3.11 standard library; wheels flask 3.1.3, werkzeug 3.1.9, jinja2 3.1.6, "
            "pygments 2.21.0, packaging 26.3; npm lodash-es 4.18.1, express 4.22.3 (+ body-parser, send, "
            "serve-static, qs), rxjs 7.8.2 (src) — scripts/fetch_default_corpus.sh",
            "files": data_stats.get("files"),
            "languages": data_stats.get("languages"),
            "train_tokens_per_epoch": (data_stats.get("tokens") or {}).get("splits", {}).get("train", {}).get("tokens"),
            "filtered": data_stats.get("counts"),
            "held_out": "boltons, dayjs (masked-token accuracy); boltons, tabulate, commander (infill); "
            "toolz, humanize, inflection (search): never in the corpus (benchmarks/data/HELDOUT.md)",
        },
        "command": "bash scripts/train_default_model.sh" + (" --gpu" if on_gpu else ""),
        **({"hardware": args.hardware} if args.hardware else {}),
        "phases": phases,
        "cumulative": cumulative,
        "date": datetime.date.today().isoformat(),
        # The encoder itself embeds no chunks (indexing stays seconds): the static table is the
        # dense side, and the search encoder rereads the top at query time.
        "search_dense_weight": 0.0,
        "search_static_table": static_table_summary(args.source / "static.safetensors"),
        "search_encoder": reranker_summary(args.source / "search_encoder", "search_rerank"),
        "search_encoder2": reranker_summary(args.source / "search_encoder2", "search_rerank"),
        "search_cross": reranker_summary(args.source / "search_cross", "cross_rerank"),
        "metrics": metrics,
    }
    boundaries, total = [], 0.0
    for phase in phases[:-1]:
        total += float(phase["tokens"] or 0)
        boundaries.append(total)
    svg = render_svg(curve_points(args.runs), boundaries)
    card = card_status(summary) + render_model_card(trained.config, summary)
    args.out.mkdir(parents=True, exist_ok=True)
    save_model_dir(args.out, trained.model, trained.tokenizer, summary=summary, card=card, dtype="float16")
    (args.out / "learning_curve.svg").write_text(svg)
    # Files fitted to this model's own outputs travel with it; an older model's copies do not.
    for companion in COMPANIONS:
        copy_companion(args.source / companion, args.out / companion)
    print(json.dumps({"cumulative": cumulative, **metrics}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
