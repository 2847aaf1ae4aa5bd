"""Redacting credentials from source text before it is stored anywhere (corpus, index, server).

One function, :func:`redact_secrets`, for every path that keeps code. It replaces what looks
like a credential with ``<REDACTED>`` and counts the replacements. Three kinds of rules, run in
this order so that a secret is replaced (and counted) once:

1. **Private key blocks** (PEM, OpenSSH, PGP).
2. **Well-known token formats** that are recognisable on their own: AWS key ids, GitHub,
   GitLab, Slack, Stripe, Google, JWTs, npm, SendGrid, OpenAI, Hugging Face, PyPI and others.
3. **Context**: credentials in URLs (``postgres://user:pass@host``), ``Authorization`` headers,
   values assigned to a secret-looking name (``db_password = "…"``, ``"apiKey": "…"``,
   ``os.environ["TOKEN"] = "…"``, ``#define API_KEY "…"``, ``.env`` lines ``SECRET_KEY=…``), and
   random-looking values assigned to a name that merely may hold one (``signing_key``).

The rule sets of gitleaks and detect-secrets were the reference for which formats matter; the
rules here are our own. Keeping ordinary code intact matters as much as catching secrets (a
corpus full of ``<REDACTED>`` teaches the model nothing), so context rules skip templates and
placeholders (``"{password}"``, ``"%(token)s"``, ``"$API_KEY"``, ``"<your key>"``), values with
spaces (messages), comparisons (``==``) and values shorter than 8 characters.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["REDACTED", "redact_secrets"]

REDACTED = "<REDACTED>"


@dataclass(frozen=True)
class _Rule:
    """A pattern whose ``secret`` group (or whole match) is replaced when ``accept`` agrees.

    ``hints``: lowercase strings of which one must occur in the text for the rule to run at
    all; most files hold none, and a substring test is far cheaper than a regex pass.
    A ``lowered`` rule's pattern is written in lowercase and matched against the lowercased
    text; the value it accepts or rejects is always the original.
    """

    name: str
    pattern: re.Pattern[str]
    hints: tuple[str, ...]
    accept: Callable[[str, str], bool] | None = None  # (value, the secret-looking word or "")
    # Run on the lowercased text (spans map one to one): a case-sensitive alternation of
    # words is several times faster in Python's re than a case-insensitive one.
    lowered: bool = False


def _entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


_PATH = re.compile(r"^(?:/|\./|\.\./|~/)[\w.-]+(?:/[\w.-]*)*$")
_PLAIN_WORD = re.compile(r"^[A-Za-z]+$")
_PASSWORD_WORDS = ("pass", "pwd", "secret")
_TEMPLATE = re.compile(r"^(?:\$\{?\w+\}?|%\(?\w*\)?[sdr]|\*+|x+|X+|\.+|#+|-+|_+)$")
_PLACEHOLDER_WORDS = (
    "changeme",
    "change_me",
    "change-me",
    "placeholder",
    "your_",
    "your-",
    "yourpassword",
    "redacted",
    "example.com",
    "xxxxxx",
    "******",
)
_PLACEHOLDER_VALUES = frozenset(
    {"password", "passwd", "pass", "secret", "token", "none", "null", "nil", "undefined", "dummy", "test"}
)


def _real_value(value: str, word: str = "") -> bool:
    """False for templates and placeholders (``{x}``, ``${X}``, ``%(x)s``, ``<...>``, ``***``)
    and for file paths."""
    if any(ch in value for ch in "{}<>") or _TEMPLATE.match(value) or _PATH.match(value):
        return False
    lowered = value.lower()
    return lowered not in _PLACEHOLDER_VALUES and not any(word in lowered for word in _PLACEHOLDER_WORDS)


def _credential(value: str, word: str) -> bool:
    """A real value; for a token- or key-like name, also not one plain word (``"punctuation"``,
    a lexer's token kind): generated tokens and keys are not dictionary words, passwords may be."""
    if not _real_value(value):
        return False
    if not _PLAIN_WORD.match(value):
        return True
    # A word that names itself (``('inputsecret', 'inputsecret')``) is a keyword table.
    word = word.lower()
    return word.startswith(_PASSWORD_WORDS) and word not in value.lower()


def _random_looking(value: str, word: str = "") -> bool:
    """A value a person did not type: long hex, or mixed-case letters with digits and high entropy."""
    if not _real_value(value) or len(value) < 16:
        return False
    if re.fullmatch(r"[0-9a-fA-F]{32,}", value):
        return _entropy(value) >= 3.0
    has_classes = (
        any(c.isupper() for c in value) and any(c.islower() for c in value) and any(c.isdigit() for c in value)
    )
    return has_classes and _entropy(value) >= 3.5


def _rule(
    name: str,
    pattern: str,
    hints: tuple[str, ...],
    accept: Callable[[str, str], bool] | None = None,
    *,
    lowered: bool = False,
) -> _Rule:
    return _Rule(name, re.compile(pattern), hints, accept, lowered)


# --- 1 and 2: private keys and well-known formats ------------------------------------------------

_FORMAT_RULES = (
    _rule(
        "private key block",
        r"(?s)-----BEGIN[A-Z0-9 ]{0,40} PRIVATE KEY(?: BLOCK)?-----.*?"
        r"(?:-----END[A-Z0-9 ]{0,40} PRIVATE KEY(?: BLOCK)?-----|\Z)",
        ("private key",),
    ),
    _rule("putty private key", r"(?s)PuTTY-User-Key-File-\d+:.*?Private-MAC: [0-9a-f]+", ("putty-user-key",)),
    _rule(
        "AWS access key id",
        r"A(?<=\bA)(?:3T[A-Z0-9]|KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|ROA|PKA)[A-Z0-9]{16}\b",
        ("a3t", "akia", "asia", "abia", "acca", "agpa", "aida", "aipa", "anpa", "anva", "aroa", "apka"),
    ),
    _rule("GitHub token", r"\bgh[pousr]_[A-Za-z0-9]{30,255}\b", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    _rule("GitHub fine-grained token", r"\bgithub_pat_[A-Za-z0-9_]{30,255}\b", ("github_pat_",)),
    _rule("GitLab token", r"\bgl(?:pat|ptt|dt|rt|soat|cbt)-[A-Za-z0-9_-]{20,}", ("glpat-", "glptt-", "gldt-", "glrt-")),
    _rule("Slack token", r"\bxox[abposre]-[A-Za-z0-9-]{10,}", ("xox",)),
    _rule(
        "Slack webhook",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9+/_-]{20,})",
        ("hooks.slack.com",),
    ),
    _rule("Stripe key", r"\b(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{16,}\b", ("sk_", "rk_")),
    _rule("Stripe webhook secret", r"\bwhsec_[A-Za-z0-9]{24,}\b", ("whsec_",)),
    _rule("Google API key", r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])", ("aiza",)),
    _rule("Google OAuth client secret", r"\bGOCSPX-[A-Za-z0-9_-]{20,}", ("gocspx-",)),
    _rule("Google OAuth access token", r"\bya29\.[0-9A-Za-z_-]{20,}", ("ya29.",)),
    _rule("JSON Web Token", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", ("eyj",)),
    _rule("npm token", r"\bnpm_[A-Za-z0-9]{36}\b", ("npm_",)),
    _rule(
        "npm auth line",  # .npmrc: `_authToken=…`, `//registry.npmjs.org/:_authToken=…`
        r"(?m)^[ \t]*(?://[^\s=]+:)?_auth(?:Token)?[ \t]*=[ \t]*(?P<secret>[^\s\"'$]{8,})[ \t]*$",
        ("_auth",),
        _real_value,
    ),
    _rule("SendGrid key", r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b", ("sg.",)),
    _rule("Twilio API key", r"SK(?<=\bSK)[0-9a-fA-F]{32}\b", ("sk",)),
    _rule("Mailgun key", r"\bkey-[0-9a-f]{32}\b", ("key-",)),
    _rule(
        "OpenAI key",
        r"\bsk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}|[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,})",
        ("sk-",),
    ),
    _rule("Anthropic key", r"\bsk-ant-[a-z]{3,8}\d{2}-[A-Za-z0-9_-]{80,}", ("sk-ant-",)),
    _rule("Hugging Face token", r"\b(?:hf_|api_org_)[A-Za-z]{34}\b", ("hf_", "api_org_")),
    _rule("PyPI token", r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}", ("pypi-",)),
    _rule("Shopify token", r"\bshp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}\b", ("shpat_", "shpss_", "shpca_", "shppa_")),
    _rule("DigitalOcean token", r"\bdo[opr]_v1_[a-f0-9]{64}\b", ("_v1_",)),
    _rule("Databricks token", r"\bdapi[a-f0-9]{32}(?:-\d)?\b", ("dapi",)),
    _rule("Square token", r"\bsq0(?:atp|csp)-[0-9A-Za-z_-]{22,43}\b", ("sq0",)),
    _rule("Telegram bot token", r"\b\d{8,10}:AA[A-Za-z0-9_-]{33}\b", (":aa",)),
    _rule(
        "Discord bot token",
        r"\b[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}\b",
        ("discord",),
        _random_looking,
    ),
    _rule("age secret key", r"\bAGE-SECRET-KEY-1[0-9A-Z]{58}\b", ("age-secret-key-",)),
    _rule("Postman key", r"\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b", ("pmak-",)),
    _rule(
        "Azure storage key",
        r"(?i)\b(?:AccountKey|SharedAccessKey)=(?P<secret>[A-Za-z0-9+/]{30,}={0,2})",
        ("accountkey=", "sharedaccesskey="),
    ),
)

# --- 3: context ------------------------------------------------------------------------------------

# Names that say "this holds a credential": any 8+ character value assigned to them goes.
_STRONG = (
    r"(?P<word>password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|auth[_-]?key"
    r"|private[_-]?key|credentials?|creds)"
    r"(?:[_.-]?(?:key|value|str|string|b64|base64|hex|bytes|hash|base))?"
)
# Names that only may hold one (``cache_key`` usually does not): the value must look random.
_WEAK = r"(?:key|salt|seed|signature|sig|auth|cert|hmac|dsn)"
# The end of a name: not inside a longer identifier.
_NAME_END = r"(?![\w-])"
# ``name: Type =`` (Python, TypeScript, Kotlin), ``:=`` (Go), ``=>`` (PHP), ``=``, ``:`` (dicts,
# JSON, struct literals); ``==`` and ``!=`` never match, since a quote must follow the operator.
_OP = r"(?P<op>(?:[ \t]*:[ \t]*[\w.\[\], |]{1,40}?)?[ \t]*(?::=|=>|=|:)[ \t]*)"
# A quoted value: no spaces (a message, not a credential), no quotes, at least 8 characters.
_VALUE = r"(?P<q>[\"'`])(?P<secret>[^\"'`\s]{8,512})(?P=q)"


# The patterns start at the secret-looking word itself, not at the start of the name that
# ends in it: what comes before the word never changes the answer, and a regex that first
# spans every identifier prefix is many times slower on ordinary code.


def _bare_assignment(name: str) -> str:
    """``db_password = "…"``, ``apiKey: "…"``, ``char api_key[] = "…"``."""
    return rf"{name}{_NAME_END}(?:\[\w*\])?{_OP}{_VALUE}"


def _quoted_assignment(name: str) -> str:
    """``"apiKey": "…"``, ``os.environ["TOKEN"] = "…"``."""
    return rf"{name}[\"'][ \t]*\]?{_OP}{_VALUE}"


def _call_assignment(name: str) -> str:
    """A call's first two arguments: ``define('DB_PASSWORD', '…')``, ``setdefault("TOKEN", "…")``."""
    return rf"\([ \t]*[\"'][\w.-]{{0,60}}?{name}[\"'][ \t]*,[ \t]*{_VALUE}"


_STRONG_HINTS = ("pass", "pwd", "secret", "token", "key", "cred")
_WEAK_HINTS = ("key", "salt", "seed", "sig", "auth", "cert", "hmac", "dsn")

# A `.env`-looking line in code is an assignment of a constant (``TOKEN=TOKEN_TYPES``), an
# attribute (``PASSWORD=settings.db``) or a call (``SECRET=load()``), not a credential.
_ENV_CODE = re.compile(r"^(?:[A-Z][A-Z0-9_]*|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+|[\w.]+\(.*\))$")

_CONTEXT_RULES = (
    _rule(
        "credentials in a URL",
        r"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s:@/'\"<>]{0,128}:(?P<secret>[^\s:@/'\"<>]{1,256})@[\w.\[-]",
        ("://",),
        _real_value,
    ),
    _rule(
        "Authorization header",
        r"(?i)\b(?:proxy-)?authorization\b[\"']?[ \t]*[:=,][ \t]*\(?[ \t]*[\"']?[ \t]*"
        r"(?:bearer|basic|token|digest|bot)[ \t]+(?P<secret>[A-Za-z0-9._~+/=-]{8,})",
        ("authorization",),
        _real_value,
    ),
    _rule(
        "bearer token",
        r"(?<![\w-])[Bb]earer[ \t]+(?P<secret>[A-Za-z0-9._~+/-]{20,}=*)",
        ("bearer",),
        _random_looking,
    ),
    _rule(
        "C #define",
        rf"(?i)#[ \t]*define[ \t]+\w{{0,60}}?{_STRONG}{_NAME_END}[ \t]+\"(?P<secret>[^\"\s]{{8,512}})\"",
        ("define",),
        _credential,
    ),
    _rule(
        ".env line",
        rf"(?m)^[ \t]*(?:export[ \t]+)?[A-Z0-9_]{{0,60}}?{_STRONG.upper()}(?:_[A-Z0-9]+)*="
        r"(?P<secret>[^\s'\"$`{(#][^\s'\"]{7,511})[ \t]*(?:#.*)?$",
        _STRONG_HINTS,
        lambda value, word: _credential(value, word) and not _ENV_CODE.match(value),
    ),
    _rule("assigned secret", _bare_assignment(_STRONG), _STRONG_HINTS, _credential, lowered=True),
    _rule("secret under a quoted name", _quoted_assignment(_STRONG), _STRONG_HINTS, _credential, lowered=True),
    _rule("secret passed by name", _call_assignment(_STRONG), _STRONG_HINTS, _credential, lowered=True),
    _rule("random value for a key-like name", _bare_assignment(_WEAK), _WEAK_HINTS, _random_looking, lowered=True),
    _rule(
        "random value under a quoted key-like name",
        _quoted_assignment(_WEAK),
        _WEAK_HINTS,
        _random_looking,
        lowered=True,
    ),
)
_RULES = _FORMAT_RULES + _CONTEXT_RULES


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _lower(text: str) -> str:
    """Lowercase with the same length (``str.lower`` may grow a few non-ASCII letters)."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text.translate(_ASCII_LOWER)


def redact_secrets(text: str) -> tuple[str, int]:
    """``text`` with every credential found replaced by ``<REDACTED>``, and how many were.

    Idempotent: redacting redacted text changes nothing and counts nothing.
    """
    lowered = _lower(text)
    count = 0
    for rule in _RULES:
        if not any(hint in lowered for hint in rule.hints):
            continue
        replaced = _apply(rule, text, lowered)
        if replaced is not None:
            text, n = replaced
            count += n
            lowered = _lower(text)
    return text, count


def _apply(rule: _Rule, text: str, lowered: str) -> tuple[str, int] | None:
    """The text with this rule's matches replaced and their number, or None when none matched."""
    pieces: list[str] = []
    position = 0
    n = 0
    group: int | str = "secret" if "secret" in rule.pattern.groupindex else 0
    has_word = "word" in rule.pattern.groupindex
    for match in rule.pattern.finditer(lowered if rule.lowered else text):
        start, end = match.span(group)
        value = text[start:end]
        if value == REDACTED:
            continue
        if rule.accept is not None and not rule.accept(value, match.group("word") if has_word else ""):
            continue
        pieces += [text[position:start], REDACTED]
        position = end
        n += 1
    if not n:
        return None
    pieces.append(text[position:])
    return "".join(pieces), n
