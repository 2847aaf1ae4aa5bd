"""Secret redaction: planted credentials of many kinds never survive; ordinary code is untouched."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from codemlm.config import CorpusConfig
from codemlm.secrets import REDACTED, redact_secrets
from codemlm.sources import CorpusStats, iter_repository

# Fake credentials in the shape of the real ones (random-looking where the real ones are).
_B64 = "Zx9Qw2Er7Ty4Ui1Op6As3Df8Gh5Jk0LmN4bV7cX2zS"
_HEX = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
PLANTED: list[tuple[str, str, str]] = [
    # (kind, a line of code holding the secret, the part that must go)
    ("AWS access key id", 'AWS_ACCESS_KEY_ID = "AKIAZ3MPLE7QW2RT5XYB"', "AKIAZ3MPLE7QW2RT5XYB"),
    ("AWS secret key", 'aws_secret_access_key = "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"', "wJalrXUtnFEMI"),
    ("GitHub token", f"gh = Github('ghp_{_B64[:36]}')", f"ghp_{_B64[:36]}"),
    ("GitHub fine-grained", f"TOKEN = get('github_pat_11ABCDEFG0_{_B64}')", f"github_pat_11ABCDEFG0_{_B64}"),
    ("GitLab token", "client = Gitlab(private_token='glpat-Zx9Qw2Er7Ty4Ui1Op6As')", "glpat-Zx9Qw2Er7Ty4Ui1Op6As"),
    ("Slack token", "slack = WebClient('xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp')", "xoxb-1234567890"),
    (
        "Slack webhook",
        'HOOK = "https://hooks.slack.com/services/T01ABCDEF/B02GHIJKL/Zx9Qw2Er7Ty4Ui1Op6As3Df8"',
        "B02GHIJKL/Zx9Qw2Er7Ty4Ui1Op6As3Df8",
    ),
    ("Stripe secret key", "stripe.api_key = 'sk_live_51Hx9Qw2Er7Ty4Ui1Op6As3Df'", "sk_live_51Hx9Qw2Er7Ty4Ui1Op6As3Df"),
    ("Google API key", 'maps = Client(key="AIzaSyDx9Qw2Er7Ty4Ui1Op6As3Df8Gh5Jk0LmN")', "AIzaSyDx9Qw2Er7Ty4Ui1Op6As3Df8Gh5Jk0LmN"),
    ("Google OAuth secret", 'flow.secret("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")', "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"),
    (
        "JSON Web Token",
        "auth = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U'",
        "eyJzdWIiOiIxMjM0NTY3ODkwIn0",
    ),
    ("npm token", f"npmToken: npm_{_B64[:36]}", f"npm_{_B64[:36]}"),
    ("npmrc auth line", f"//registry.npmjs.org/:_authToken={_HEX}", _HEX),
    (
        "SendGrid key",
        f'sg = SendGridAPIClient("SG.{_B64[:22]}.{_B64}{_B64[:1]}")',
        f"SG.{_B64[:22]}",
    ),
    ("OpenAI key", f'client = OpenAI(api_key="sk-proj-{_B64}{_B64[:10]}")', f"sk-proj-{_B64}"),
    ("Anthropic key", f'Anthropic(api_key="sk-ant-api03-{_B64 * 2}")', f"sk-ant-api03-{_B64}"),
    ("Hugging Face token", "login('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')", "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"),
    ("Twilio API key", f"twilio_key('SK{_HEX}')", f"SK{_HEX}"),
    ("Mailgun key", f"mg.auth(('api', 'key-{_HEX}'))", f"key-{_HEX}"),
    ("Telegram bot token", "bot = Bot('1234567890:AAHx9Qw2Er7Ty4Ui1Op6As3Df8Gh5Jk0LmN')", "AAHx9Qw2Er7Ty4Ui1Op6As3Df8Gh5Jk0LmN"),
    ("PyPI token", f"upload(pw='pypi-AgEIcHlwaS5vcmc{_B64}{_B64}')", f"pypi-AgEIcHlwaS5vcmc{_B64}"),
    ("DigitalOcean token", f"do = Manager('dop_v1_{_HEX}{_HEX}')", f"dop_v1_{_HEX}"),
    (
        "Azure storage key",
        f'conn = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={_B64}{_B64}==;"',
        f"{_B64}{_B64}==",
    ),
    (
        "RSA private key",
        '"""\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx9Qw2Er7Ty4Ui1Op6As3\n-----END RSA PRIVATE KEY-----\n"""',
        "MIIEowIBAAKCAQEAx9Qw2Er7Ty4Ui1Op6As3",
    ),
    (
        "OpenSSH private key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\n-----END OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU",
    ),
    ("password in a URL", 'DB = "postgres://app_user:S3cr3tP4ss@db.internal:5432/app"', "S3cr3tP4ss"),
    ("password in a redis URL", "cache = Redis.from_url('redis://:p4ssw0rd123@cache:6379/0')", "p4ssw0rd123"),
    ("Bearer header", f'headers = {{"Authorization": "Bearer {_HEX}"}}', _HEX),
    ("Basic header", "// curl -H 'Authorization: Basic dXNlcjpwYXNzd29yZDEyMw=='", "dXNlcjpwYXNzd29yZDEyMw=="),
    ("Django SECRET_KEY", "SECRET_KEY = 'django-insecure-7x!k2@q9#m$w4v&z8p^r3t*y6u(b1n)c0e'", "7x!k2@q9#m$w4v"),
    ("unquoted .env line", "DATABASE_PASSWORD=Tr0ub4dor3xyz", "Tr0ub4dor3xyz"),
    ("exported .env line", "export GITHUB_TOKEN=abcd1234efgh5678ijkl", "abcd1234efgh5678ijkl"),
    ("os.environ assignment", 'os.environ["PAYMENTS_API_KEY"] = "q8w7e6r5t4y3u2i1o0p9"', "q8w7e6r5t4y3u2i1o0p9"),
    ("os.environ setdefault", "os.environ.setdefault('SERVICE_TOKEN', 'zq8w7e6r5t4y3u2i')", "zq8w7e6r5t4y3u2i"),
    ("C #define", '#define API_KEY "a1b2c3d4e5f6g7h8"', "a1b2c3d4e5f6g7h8"),
    ("JavaScript object", "const config = { password: 'hunter2hunter2' };", "hunter2hunter2"),
    ("Go short assignment", 'dbPassword := "correct-horse-battery-staple"', "correct-horse-battery-staple"),
    ("Java constant", 'private static final String CLIENT_SECRET = "0a1b2c3d4e5f6a7b8c9d";', "0a1b2c3d4e5f6a7b8c9d"),
    ("PHP define", "define('DB_PASSWORD', 'p4ssw0rd!2024');", "p4ssw0rd!2024"),
    ("Rust let", 'let api_key = "AbCdEf0123456789";', "AbCdEf0123456789"),
    ("keyword argument", 'connect(host="db", password="hunter2hunter2")', "hunter2hunter2"),
    ("C char array", 'static const char auth_token[] = "t0k3n-v4lu3-xyz";', "t0k3n-v4lu3-xyz"),
    ("random value for a key-like name", f'signing_key = "{_B64}"', _B64),
    ("typed assignment", 'api_key: Final[str] = "k-9Qw2Er7Ty4Ui1"', "k-9Qw2Er7Ty4Ui1"),
]


def test_enough_kinds_are_planted():
    assert len({kind for kind, _line, _secret in PLANTED}) >= 24


@pytest.mark.parametrize(("kind", "line", "secret"), PLANTED, ids=[k for k, _l, _s in PLANTED])
def test_each_planted_secret_is_redacted(kind, line, secret):
    redacted, count = redact_secrets(line)
    assert secret not in redacted, kind
    assert count >= 1 and REDACTED in redacted
    assert redact_secrets(redacted) == (redacted, 0)  # idempotent


def test_all_planted_secrets_in_one_file_are_redacted():
    text = "\n".join(line for _kind, line, _secret in PLANTED) + "\n"
    redacted, count = redact_secrets(text)
    survivors = [kind for kind, _line, secret in PLANTED if secret in redacted]
    assert survivors == []
    assert count >= len(PLANTED)
    # Values go, the code around them stays.
    for kept in ("AWS_ACCESS_KEY_ID = ", "os.environ[\"PAYMENTS_API_KEY\"] = ", "#define API_KEY ", "postgres://app_user:"):
        assert kept in redacted


def test_the_corpus_walk_redacts_and_counts(tmp_path: Path):
    # Spaced out as settings files are (a file of nothing but long tokens counts as minified).
    lines = [line for _kind, line, _secret in PLANTED if not line.startswith(("#", "//", "-"))]
    text = "\n\n# the next setting is from the deployment notes\n".join(lines)
    (tmp_path / "settings.py").write_text(text + "\n", encoding="utf-8")
    stats = CorpusStats()
    (kept,) = list(iter_repository(tmp_path, CorpusConfig(), stats))
    assert not [secret for _kind, line, secret in PLANTED if line in text and secret in kept.text]
    assert stats.counts["secrets_redacted"] >= len(lines)


ORDINARY = [
    "token = tokenize.generate_tokens(readline)",
    'password = getpass.getpass("Password: ")',
    "if token.type == tokenize.NAME:",
    'cache_key = "user_profile_settings_v2"',
    'KEY_FIELDS = ("name", "path")',
    'url = f"postgresql://{user}:{password}@{host}/{db}"',
    'DSN = "postgres://%(user)s:%(password)s@%(host)s/app"',
    'SECRET_KEY = os.environ["SECRET_KEY"]',
    'api_key = os.environ.get("API_KEY")',
    'headers["Authorization"] = f"Bearer {token}"',
    'headers = {"Authorization": "Bearer " + token}',
    "sig = inspect.signature(func)",
    "pwd = os.getcwd()",
    'auth_header = "Authorization"',
    "__all__ = ('Context', 'ContextVar', 'Token', 'copy_context')",
    '"token_bytes", "token_hex", "token_urlsafe",',
    'EXPECTED_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"',
    'password_field = "password"',
    'token_type = "identifier"',
    "export PATH=/usr/local/bin:$PATH",
    "PASSWORD=$1",
    "TOKEN=get_token()",
    "PASSWORD=settings.database",
    "TOKEN=TOKEN_TYPES",
    'password = "${DB_PASSWORD}"',
    'api_key = "<your-api-key>"',
    'secret = "changeme-please"',
    'token = "xxxxxxxxxxxx"',
    "while token != 'ENDMARKER':",
    'if password == "abcdefghij": pass',
    'git_url = "git@github.com:owner/repo.git"',
    'proxy = "http://proxy.example.com:3128/"',
    "proxy_auth = base64.b64encode(proxy_passwd.encode()).decode('ascii')",
    "is_auth = pwd_manager.is_authenticated(request_url)",
    "authkey=process.current_process().authkey,",
    'f\'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", \'',
    'token = "punctuation"',  # a lexer's token kind: one plain word is no generated token
    '{"key": "username"}',
    'pwd = "/home/user/project"',  # a path, not a password
    "#define TOKEN_SEPARATOR \"semicolon\"",
    "('inputsecret','inputsecret'),",  # a keyword table (pygments' vim builtins)
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_code_is_left_alone(text):
    assert redact_secrets(text) == (text, 0)


# Standard-library modules that talk about passwords, tokens, keys and authorization all day.
_STDLIB_MODULES = [
    "getpass.py",
    "hmac.py",
    "secrets.py",
    "tokenize.py",
    "smtplib.py",
    "ftplib.py",
    "imaplib.py",
    "poplib.py",
    "netrc.py",
    "http/client.py",
    "http/cookies.py",
    "json/decoder.py",
    "base64.py",
    "contextvars.py",
    "multiprocessing/connection.py",
    "ssl.py",
    "configparser.py",
    "urllib/parse.py",
    "xmlrpc/client.py",
]


@pytest.mark.parametrize("name", _STDLIB_MODULES)
def test_stdlib_modules_are_unchanged(name):
    path = Path(sysconfig.get_paths()["stdlib"]) / name
    if not path.is_file():
        pytest.skip(f"{name} is not in this Python")
    text = path.read_text(encoding="utf-8")
    redacted, count = redact_secrets(text)
    assert count == 0 and redacted == text
