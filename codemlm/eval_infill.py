"""Infill evaluation over the case format of docs/INTERFACES.md.

A case file is JSON Lines, one case a line::

    {"id", "language", "path"?, "kind"?, "prefix", "suffix", "target"}

Fill the hole between ``prefix`` and ``suffix`` (a cursor there, as in an editor); the answer
is ``target``. Metrics, overall and per ``kind`` and per ``language``:

* ``em_at_1`` / ``em_at_5``: the top-1 / any of the top-5 equals the target (whitespace-trimmed);
* ``edit_similarity``: mean of ``1 - levenshtein(top1, target) / max(len)`` (trimmed);
* ``parses``: share of top-1 fills after which the file has no more ERROR/MISSING nodes than
  with the hole left empty (cases of languages with a grammar only);
* ``latency_p50_ms`` / ``latency_p95_ms``: wall time of one completion.

Also per source of the top-1 candidate (``by_source``: which candidate source won, and how
often it was right) and, with several ``modes``, one ablation row per engine mode: ``model``
(Mask-Predict only), ``context`` (the code's own names and spans, no model), ``both``.
With ``repo_dir`` every case also gets the repository's *other* files as context (the case's
own file, named by its ``path``, is left out, so its answer cannot leak in).

Validation is strict, so a typo in a held-out set fails loudly with its line number instead
of silently scoring zero.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codemlm.errors import EvaluationError, InputError, UnsupportedLanguageError

if TYPE_CHECKING:
    from codemlm.candidates import Repository
    from codemlm.infill import InfillEngine

__all__ = [
    "CaseOutcome",
    "InfillCase",
    "edit_similarity",
    "evaluate_infill",
    "format_infill_report",
    "levenshtein",
    "load_infill_cases",
    "percentile",
    "run_cases",
    "score_cases",
]

_REQUIRED = ("id", "language", "prefix", "suffix", "target")
_OPTIONAL = ("path", "kind")


@dataclass(frozen=True)
class InfillCase:
    id: str
    language: str
    prefix: str
    suffix: str
    target: str
    path: str | None = None
    kind: str | None = None


def load_infill_cases(path: str | Path) -> list[InfillCase]:
    """Read and validate a case file; every problem names its line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise EvaluationError(f"case file not found: {path}") from exc
    except UnicodeDecodeError as exc:
        raise EvaluationError(f"{path} is not valid UTF-8 (byte {exc.start})") from exc
    except OSError as exc:
        raise EvaluationError(f"cannot read {path}: {exc.strerror}") from exc
    cases: list[InfillCase] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        case = _parse_case(line, f"{path}:{number}")
        if case.id in seen:
            raise EvaluationError(f"{path}:{number}: duplicate id {case.id!r} (first on line {seen[case.id]})")
        seen[case.id] = number
        cases.append(case)
    if not cases:
        raise EvaluationError(f"{path}: no cases")
    return cases


def _parse_case(line: str, where: str) -> InfillCase:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(raw, dict):
        raise EvaluationError(f"{where}: a case must be a JSON object, got {type(raw).__name__}")
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise EvaluationError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(raw) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise EvaluationError(
            f"{where}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(_REQUIRED + _OPTIONAL)})"
        )
    case_id = raw["id"]
    if isinstance(case_id, bool) or not isinstance(case_id, str | int) or str(case_id) == "":
        raise EvaluationError(f"{where}: id must be a non-empty string or an integer")
    for key in ("language", "prefix", "suffix", "target"):
        if not isinstance(raw[key], str):
            raise EvaluationError(f"{where}: {key} must be a string, got {type(raw[key]).__name__}")
    for key in _OPTIONAL:
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise EvaluationError(f"{where}: {key} must be a string or null")
    if not raw["language"].strip():
        raise EvaluationError(f"{where}: language must not be empty")
    if not raw["target"].strip():
        raise EvaluationError(f"{where}: target must not be empty or whitespace only")
    if not (raw["prefix"] + raw["suffix"]).strip():
        raise EvaluationError(f"{where}: prefix and suffix are both empty: there is no context")
    if "\x00" in raw["prefix"] + raw["suffix"] + raw["target"]:
        raise EvaluationError(f"{where}: NUL characters (binary content) in the case")
    return InfillCase(
        id=str(case_id),
        language=raw["language"].strip().lower(),
        prefix=raw["prefix"],
        suffix=raw["suffix"],
        target=raw["target"],
        path=raw.get("path"),
        kind=raw.get("kind"),
    )


# ---------------------------------------------------------------------- metrics
def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert, delete, substitute; each costs 1) in code points."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_similarity(prediction: str, target: str) -> float:
    """1 - levenshtein / max length, on whitespace-trimmed strings (1.0 when both are empty)."""
    a, b = prediction.strip(), target.strip()
    longest = max(len(a), len(b))
    return 1.0 if longest == 0 else 1.0 - levenshtein(a, b) / longest


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class CaseOutcome:
    case: InfillCase
    predictions: list[str]
    latency_ms: float
    parses: bool | None  # None: no grammar for the language
    sources: list[str] | None = None  # the source of each prediction, when the engine says


def _summarize(outcomes: list[CaseOutcome]) -> dict[str, Any]:
    n = len(outcomes)
    target = [o.case.target.strip() for o in outcomes]
    top1 = [o.predictions[0] if o.predictions else "" for o in outcomes]
    checked = [o.parses for o in outcomes if o.parses is not None]
    latencies = [o.latency_ms for o in outcomes]
    return {
        "cases": n,
        "em_at_1": sum(p.strip() == t for p, t in zip(top1, target, strict=True)) / n,
        "em_at_5": sum(t in {p.strip() for p in o.predictions[:5]} for o, t in zip(outcomes, target, strict=True)) / n,
        "edit_similarity": sum(edit_similarity(p, o.case.target) for p, o in zip(top1, outcomes, strict=True)) / n,
        "parses": (sum(checked) / len(checked)) if checked else None,
        "parse_checked": len(checked),
        "no_candidates": sum(not o.predictions for o in outcomes),
        "latency_p50_ms": round(percentile(latencies, 50), 2),
        "latency_p95_ms": round(percentile(latencies, 95), 2),
    }


def score_cases(outcomes: list[CaseOutcome]) -> dict[str, Any]:
    """Metrics overall, per kind, per language and per source of the top-1 candidate."""
    by_kind: dict[str, list[CaseOutcome]] = defaultdict(list)
    by_language: dict[str, list[CaseOutcome]] = defaultdict(list)
    by_source: dict[str, list[CaseOutcome]] = defaultdict(list)
    for o in outcomes:
        by_kind[o.case.kind or "unlabeled"].append(o)
        by_language[o.case.language].append(o)
        top_source = (o.sources[0] if o.sources else "unknown") if o.predictions else "none"
        by_source[top_source].append(o)
    return {
        "overall": _summarize(outcomes),
        "by_kind": {kind: _summarize(group) for kind, group in sorted(by_kind.items())},
        "by_language": {lang: _summarize(group) for lang, group in sorted(by_language.items())},
        "by_source": {source: _summarize(group) for source, group in sorted(by_source.items())},
    }


def _parse_checker(language: str) -> Callable[[str], int] | None:
    from codemlm.languages import get_language
    from codemlm.syntax import error_count

    try:
        name = get_language(language).name
    except UnsupportedLanguageError:
        return None
    return lambda code: error_count(code, name)


def run_cases(
    engine: InfillEngine,
    cases: Iterable[InfillCase],
    *,
    k: int = 5,
    progress: Callable[[int], None] | None = None,
    repository_for: Callable[[InfillCase], Repository | None] | None = None,
) -> list[CaseOutcome]:
    """Complete every case with ``engine``; a case the engine rejects counts as no candidates.

    ``repository_for(case)``: the repository context of a case (its other files), or None."""
    outcomes: list[CaseOutcome] = []
    for i, case in enumerate(cases):
        text = case.prefix + case.suffix
        hole = len(case.prefix.encode("utf-8"))
        repository = repository_for(case) if repository_for is not None else None
        extra: dict[str, Any] = {"repository": repository} if repository is not None else {}
        began = time.perf_counter()
        try:
            candidates = engine.complete(text, hole, language=case.language, k=k, **extra)
        except InputError:
            candidates = []
        latency = (time.perf_counter() - began) * 1000
        predictions = [c.text for c in candidates]
        sources = [getattr(c, "source", "unknown") for c in candidates]
        parses: bool | None = None
        check = _parse_checker(case.language)
        if check is not None:
            fill = predictions[0] if predictions else ""
            parses = check(case.prefix + fill + case.suffix) <= check(text)
        outcomes.append(CaseOutcome(case, predictions, latency, parses, sources))
        if progress is not None:
            progress(i + 1)
    return outcomes


def evaluate_infill(
    cases_path: str | Path,
    *,
    model_dir: str | Path | None = None,
    engine: InfillEngine | None = None,
    k: int = 5,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
    modes: Sequence[str] = (),
    repo_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate the model (``engine``, or the one in ``model_dir`` / the default) on a case file.

    ``modes`` (of ``both``, ``model``, ``context``): one ablation run per mode, reported under
    ``ablation``; the headline metrics are the first mode's (the engine's own mode when empty).
    ``repo_dir``: the cases' repository, whose other files join each completion as context.
    """
    cases = load_infill_cases(cases_path)
    if limit is not None:
        cases = cases[:limit]
    model_path: str | None = None
    if engine is None:
        from codemlm.checkpoint import load_model_dir, resolve_model_dir
        from codemlm.infill import InfillEngine

        resolved = resolve_model_dir(str(model_dir) if model_dir is not None else None)
        model_path = str(resolved)
        engine = InfillEngine(load_model_dir(resolved))
    repository_for = _repositories(Path(repo_dir)) if repo_dir is not None else None
    # One warm-up completion: the first forward allocates, it is not what a user waits for.
    first = cases[0]
    with contextlib.suppress(InputError):
        engine.complete(first.prefix + first.suffix, len(first.prefix.encode("utf-8")), language=first.language, k=k)
    began = time.perf_counter()
    config = getattr(engine, "config", None)
    runs: dict[str, dict[str, Any]] = {}
    report: dict[str, Any] = {}
    for mode in modes or [getattr(config, "sources", "engine")]:
        if modes:
            _set_mode(engine, mode)
        scored = score_cases(run_cases(engine, cases, k=k, progress=progress, repository_for=repository_for))
        runs[mode] = scored
        report = report or dict(scored)
    if modes and config is not None:
        engine.config = config
    if len(runs) > 1:
        report["ablation"] = {mode: {"overall": r["overall"], "by_kind": r["by_kind"]} for mode, r in runs.items()}
    report.update({"task": "infill", "cases_file": str(cases_path), "model": model_path, "k": k,
                   "mode": next(iter(runs)), "repository": str(repo_dir) if repo_dir is not None else None,
                   "seconds": round(time.perf_counter() - began, 2), "engine": _engine_settings(engine)})
    return report


def _set_mode(engine: InfillEngine, mode: str) -> None:
    import dataclasses

    from codemlm.infill import SOURCE_MODES, InfillConfig

    if mode not in SOURCE_MODES:
        raise InputError(f"unknown mode {mode!r} (choose from {', '.join(SOURCE_MODES)})")
    config = getattr(engine, "config", None)
    if not isinstance(config, InfillConfig):
        raise InputError("this engine has no modes to compare")
    engine.config = dataclasses.replace(config, sources=mode)


def _repositories(root: Path) -> Callable[[InfillCase], Repository | None]:
    """Per case: the repository of ``root``'s files in the case's language, minus the case's file.

    Built once per left-out file. Files are matched to the case's ``path`` by their path relative
    to ``root`` or to its parent (the case files name ``package/module.py``)."""
    if not root.is_dir():
        raise EvaluationError(f"repository folder not found: {root}")
    from codemlm.candidates import Repository
    from codemlm.languages import language_for_path

    files: list[tuple[str, str, str, str]] = []  # (language, rel to root, rel to parent, text)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        found = language_for_path(path)
        if found is None:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        files.append((found.name, path.relative_to(root).as_posix(), path.relative_to(root.parent).as_posix(), text))
    built: dict[tuple[str, str | None], Repository] = {}

    def repository_for(case: InfillCase) -> Repository | None:
        key = (case.language, case.path)
        if key not in built:
            keep = [text for lang, rel, rel_parent, text in files
                    if lang == case.language and case.path not in (rel, rel_parent)]
            built[key] = Repository(keep, case.language)
        return built[key]

    return repository_for


def _engine_settings(engine: InfillEngine) -> dict[str, Any]:
    """What the numbers depend on besides the model: window, lengths, rounds, precision, threads."""
    import dataclasses

    import torch

    config = getattr(engine, "config", None)
    settings = dataclasses.asdict(config) if dataclasses.is_dataclass(config) and not isinstance(config, type) else {}
    settings.update({"window_tokens": getattr(engine, "max_tokens", None),
                     "bf16": getattr(engine, "autocast_bf16", None), "torch_threads": torch.get_num_threads()})
    return settings


def format_infill_report(report: dict[str, Any]) -> str:
    """A plain table: one row overall, then one per kind and per language."""
    header = f"{'group':<24} {'n':>5} {'EM@1':>6} {'EM@5':>6} {'editsim':>8} {'parses':>7} {'p50 ms':>8} {'p95 ms':>8}"
    rows = [f"infill evaluation: {report.get('cases_file', '')}  (model: {report.get('model') or 'given'})",
            header, "-" * len(header)]

    def row(name: str, m: dict[str, Any]) -> str:
        parses = "-" if m["parses"] is None else f"{m['parses']:.3f}"
        return (f"{name:<24} {m['cases']:>5} {m['em_at_1']:>6.3f} {m['em_at_5']:>6.3f} "
                f"{m['edit_similarity']:>8.3f} {parses:>7} {m['latency_p50_ms']:>8.1f} {m['latency_p95_ms']:>8.1f}")

    rows.append(row(f"overall ({report.get('mode', 'engine')})", report["overall"]))
    for kind, m in report["by_kind"].items():
        rows.append(row(f"kind: {kind}", m))
    for lang, m in report["by_language"].items():
        rows.append(row(f"language: {lang}", m))
    for source, m in report.get("by_source", {}).items():
        rows.append(row(f"top-1 source: {source}", m))
    for mode, r in report.get("ablation", {}).items():
        rows.append(row(f"mode: {mode}", r["overall"]))
        for kind, m in r["by_kind"].items():
            rows.append(row(f"  {mode} / {kind}", m))
    return "\n".join(rows)
