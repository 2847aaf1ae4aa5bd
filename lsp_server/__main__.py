"""``codemlm-lsp``: start the language server (stdio by default, or TCP on 127.0.0.1).

With ``--tcp`` the server listens on 127.0.0.1 only, without authentication: any process of
any user on this machine can connect (nothing from other machines can). Each connection gets
a session of its own, and the server keeps listening after a client disconnects or exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence

from lsp_server import __version__

__all__ = ["build_parser", "main"]

LOCALHOST = "127.0.0.1"  # never another interface: the server reads and edits local files


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codemlm-lsp",
        description="codemlm language server: masked-span completion and code search over LSP.",
    )
    parser.add_argument("--version", action="version", version=f"codemlm-lsp {__version__}")
    parser.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (the default)")
    parser.add_argument(
        "--tcp",
        action="store_true",
        help=f"listen on {LOCALHOST}:PORT instead of stdio (any local user can connect; one session per connection)",
    )
    parser.add_argument("--port", type=int, default=2087, help="TCP port with --tcp (default: 2087)")
    parser.add_argument("--log-file", metavar="PATH", help="write the server log here (default: stderr)")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default: INFO"
    )
    return parser


def _configure_logging(log_file: str | None, level: str) -> None:
    # stdout carries the protocol: logs go to stderr or a file, never stdout.
    handler: logging.Handler = (
        logging.FileHandler(log_file, encoding="utf-8") if log_file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pygls logs every message body at INFO; that is DEBUG material here.
    logging.getLogger("pygls").setLevel(max(logging.WARNING, logging.getLevelName(level)))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.tcp and args.stdio:
        print("codemlm-lsp: error: choose --stdio or --tcp, not both", file=sys.stderr)
        return 2
    if args.tcp and not 0 < args.port < 65536:
        print(f"codemlm-lsp: error: --port must be 1-65535, got {args.port}", file=sys.stderr)
        return 2
    try:
        _configure_logging(args.log_file, args.log_level)
    except OSError as exc:
        print(f"codemlm-lsp: error: cannot open the log file: {exc}", file=sys.stderr)
        return 2

    # pygls and the library load after --help/--version.
    from lsp_server.pygls_shim import serve_stdio, serve_tcp
    from lsp_server.server import CodemlmLanguageServer, create_server

    if args.tcp:

        def session(connection: asyncio.StreamWriter) -> tuple[CodemlmLanguageServer, Callable[[], None]]:
            # `exit` ends this connection only; the listener keeps serving the next client.
            server = create_server(on_exit=lambda code: connection.close())
            return server, server.end_session

        serve_tcp(session, LOCALHOST, args.port)
    else:
        server = create_server()
        serve_stdio(server, sys.stdin.buffer, sys.stdout.buffer, server.end_session)
    return 0


if __name__ == "__main__":
    sys.exit(main())
