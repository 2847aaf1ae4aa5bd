"""Server settings: parsed from ``initializationOptions`` and ``workspace/didChangeConfiguration``.

The settings contract is in docs/INTERFACES.md (section "Language server"). Editors send
user-typed JSON, so parsing never raises: each field that is missing takes its default, and
each field that is invalid takes its default *and* produces one human-readable problem line
(the server shows those in a ``window/showMessage`` warning). Modelled on
jedi-language-server's ``initialization_options.py``: one frozen dataclass, safe defaults.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from codemlm.languages import LANGUAGES

__all__ = ["MAX_CANDIDATES_LIMIT", "ServerOptions", "parse_options"]

logger = logging.getLogger(__name__)

# More candidates than this is never useful in a completion menu, and each one costs model time.
MAX_CANDIDATES_LIMIT = 20

_KNOWN_KEYS = frozenset(
    {"modelDir", "indexPath", "completion", "inlineCompletion", "maxCandidates", "languages", "repositoryContext",
     "searchRerank"}
)
_KNOWN_LANGUAGES = tuple(LANGUAGES)  # the one languages table (codemlm/languages.py)


@dataclass(frozen=True)
class ServerOptions:
    """Everything a user can set. ``None`` means "the library's default" (model, index path)
    or "no restriction" (languages)."""

    model_dir: str | None = None
    completion_enabled: bool = True
    inline_completion_enabled: bool = True
    max_candidates: int = 5
    index_path: str | None = None
    languages: tuple[str, ...] | None = None
    # Completion also reads the workspace's other files (from the index). Off by default: on
    # held-out code it helped on one set and hurt top-1 on another (BENCHMARKS.md).
    repository_context: bool = False
    # Search results reread by the model's search encoder, when the model ships one (the model
    # is loaded for completion anyway; codemlm/search_rerank.py).
    search_rerank: bool = True

    def language_enabled(self, language: str | None) -> bool:
        if language is None:
            return False
        return self.languages is None or language in self.languages


def _section(raw: Any) -> tuple[dict[str, Any], list[str]]:
    """The ``codemlm`` section of a settings object.

    Clients differ: VS Code sends ``{"codemlm": {...}}`` on didChangeConfiguration, while
    initializationOptions are usually the section itself. Accept both.
    """
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        return {}, [f"settings must be an object, got {type(raw).__name__}"]
    if "codemlm" in raw:
        inner = raw["codemlm"]
        if inner is None:
            return {}, []
        if not isinstance(inner, dict):
            return {}, [f"settings 'codemlm' must be an object, got {type(inner).__name__}"]
        return inner, []
    return raw, []


def _enabled_flag(section: dict[str, Any], key: str, problems: list[str]) -> bool | None:
    """``{"enabled": bool}`` objects (``completion``, ``inlineCompletion``); a bare bool is
    accepted too since it is an obvious shorthand."""
    if key not in section:
        return None
    value = section[key]
    if isinstance(value, bool):
        return value
    if isinstance(value, dict):
        enabled = value.get("enabled", True)
        if isinstance(enabled, bool):
            return enabled
        problems.append(f"{key}.enabled must be true or false, got {enabled!r}")
        return None
    problems.append(f"{key} must be an object like {{\"enabled\": true}}, got {value!r}")
    return None


def _optional_path(section: dict[str, Any], key: str, problems: list[str]) -> tuple[bool, str | None]:
    if key not in section:
        return False, None
    value = section[key]
    if value is None:
        return True, None
    if isinstance(value, str):
        return True, (value.strip() or None)
    problems.append(f"{key} must be a path string or null, got {value!r}")
    return False, None


def parse_options(raw: Any) -> tuple[ServerOptions, list[str]]:
    """Parse user settings over the defaults.

    Returns the options and a list of problems; a problem field keeps its default.
    """
    defaults = ServerOptions()
    options = defaults
    section, problems = _section(raw)
    updates: dict[str, Any] = {}

    present, model_dir = _optional_path(section, "modelDir", problems)
    if present:
        updates["model_dir"] = model_dir
    elif "modelDir" in section:
        updates["model_dir"] = defaults.model_dir

    present, index_path = _optional_path(section, "indexPath", problems)
    if present:
        updates["index_path"] = index_path
    elif "indexPath" in section:
        updates["index_path"] = defaults.index_path

    for key, field_name in (("completion", "completion_enabled"), ("inlineCompletion", "inline_completion_enabled")):
        if key in section:
            flag = _enabled_flag(section, key, problems)
            updates[field_name] = getattr(defaults, field_name) if flag is None else flag

    for key, field_name in (("repositoryContext", "repository_context"), ("searchRerank", "search_rerank")):
        if key in section:
            value = section[key]
            if isinstance(value, bool):
                updates[field_name] = value
            else:
                problems.append(f"{key} must be true or false, got {value!r}")
                updates[field_name] = getattr(defaults, field_name)

    if "maxCandidates" in section:
        value = section["maxCandidates"]
        # bool is an int subclass; `true` is not a count.
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_CANDIDATES_LIMIT:
            updates["max_candidates"] = value
        else:
            problems.append(f"maxCandidates must be an integer from 1 to {MAX_CANDIDATES_LIMIT}, got {value!r}")
            updates["max_candidates"] = defaults.max_candidates

    if "languages" in section:
        value = section["languages"]
        if value is None:
            updates["languages"] = None
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            unknown = sorted({item for item in value if item not in _KNOWN_LANGUAGES})
            if unknown:
                problems.append(
                    f"languages: unknown {', '.join(unknown)}; known: {', '.join(_KNOWN_LANGUAGES)}"
                )
            known = tuple(item for item in value if item in _KNOWN_LANGUAGES)
            updates["languages"] = known if known or not value else defaults.languages
        else:
            problems.append(f"languages must be a list of language names or null, got {value!r}")
            updates["languages"] = defaults.languages

    # Keys we do not know are the editor extension's own settings (server path, trace level,
    # ...), which share the ``codemlm`` section: ignored quietly, not a problem.
    unknown_keys = sorted(set(section) - _KNOWN_KEYS)
    if unknown_keys:
        logger.debug("ignoring client-side settings: %s", ", ".join(unknown_keys))

    return replace(options, **updates), problems
