"""`switchboard`: serve, mint a development token, print the protocol schema, run the sandbox."""

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from daemon import __version__
from daemon.config import Settings
from daemon.logs import configure
from daemon.secrets_file import load_or_create_dev_secret
from daemon.server.auth import mint_token
from protocol.messages import json_schema


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when the `fast` extra is installed (about twice the socket throughput)."""
    with contextlib.suppress(KeyboardInterrupt):
        try:
            import uvloop
        except ImportError:
            asyncio.run(main)
        else:
            uvloop.run(main)


def _serve(args: argparse.Namespace) -> None:
    overrides = {
        key: value
        for key, value in {
            "host": args.host,
            "ws_port": args.ws_port,
            "http_port": args.http_port,
            "redis_url": args.redis_url,
            "node_id": args.node_id,
            "demo": args.demo or None,
        }.items()
        if value is not None
    }
    settings = load_settings(**overrides)
    configure(settings.log_level, settings.log_format)
    from daemon.app import Daemon

    _run(Daemon(settings).serve_forever())


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and flags, or exit 2 with one line per problem, each
    naming the setting: a traceback is no answer to a typo in a unit file."""
    try:
        return Settings(**overrides)
    except ValidationError as e:
        for error in e.errors():
            print(f"switchboard: configuration error: {_describe(error)}", file=sys.stderr)
        raise SystemExit(2) from None


def _describe(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:
        return message
    name = "SWITCHBOARD_" + "__".join(str(part) for part in error["loc"]).upper()
    return f"{name}={error['input']!r}: {message}"


def _token(args: argparse.Namespace) -> None:
    secret = os.environ.get("SWITCHBOARD_SECRET") or args.secret
    if not secret:
        secret, _ = load_or_create_dev_secret()
    print(
        mint_token(
            secret,
            args.agent,
            ttl_seconds=args.ttl,
            zendesk_user_id=args.zendesk_user_id,
            name=args.name,
        )
    )


def _schema(_: argparse.Namespace) -> None:
    json.dump(json_schema(), sys.stdout, indent=2)
    print()


def _sandbox(args: argparse.Namespace) -> None:
    configure("info", "auto")
    from daemon.sandbox import run_sandbox

    _run(run_sandbox(args.host, args.port))


def _connect_sandbox(args: argparse.Namespace) -> None:
    configure("info", "auto")
    from daemon.connect.sandbox import run_connect_sandbox

    _run(run_connect_sandbox(args.host, args.port))


def _build_zendesk_app(args: argparse.Namespace) -> None:
    from daemon.server.zendesk_app import build_package

    try:
        print(build_package(Path(args.out), args.url))
    except ValueError as e:
        raise SystemExit(f"switchboard zendesk-app build: {e}") from None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the daemon (all settings: SWITCHBOARD_*)")
    serve.add_argument("--host", help="address to listen on (SWITCHBOARD_HOST)")
    serve.add_argument("--ws-port", type=int, help="WebSocket port (SWITCHBOARD_WS_PORT)")
    serve.add_argument("--http-port", type=int, help="ops HTTP port (SWITCHBOARD_HTTP_PORT)")
    serve.add_argument("--redis-url", help="use Redis instead of memory (SWITCHBOARD_REDIS_URL)")
    serve.add_argument("--node-id", help="this node's name (SWITCHBOARD_NODE_ID)")
    serve.add_argument(
        "--demo",
        action="store_true",
        help="local demo: embedded Zendesk sandbox and demo pages, loopback only "
        "(SWITCHBOARD_DEMO)",
    )
    serve.set_defaults(func=_serve)

    token = commands.add_parser("token", help="mint a tab token for development")
    token.add_argument("--agent", required=True, help="the agent id the token names")
    token.add_argument("--secret", help="signing secret (default: SWITCHBOARD_SECRET or dev)")
    token.add_argument(
        "--ttl",
        type=int,
        default=int(
            os.environ.get(
                "SWITCHBOARD_TOKEN_TTL_SECONDS", Settings.model_fields["token_ttl_seconds"].default
            )
        ),
        help="lifetime in seconds (SWITCHBOARD_TOKEN_TTL_SECONDS)",
    )
    token.add_argument("--zendesk-user-id", type=int, help="the agent's Zendesk user id")
    token.add_argument("--name", help="the agent's display name")
    token.set_defaults(func=_token)

    schema = commands.add_parser("schema", help="print the protocol's JSON Schema")
    schema.set_defaults(func=_schema)

    sandbox = commands.add_parser("sandbox", help="run the Zendesk API sandbox alone")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8767)
    sandbox.set_defaults(func=_sandbox)

    connect = commands.add_parser(
        "connect-sandbox", help="run the Amazon Connect API sandbox alone (development)"
    )
    connect.add_argument("--host", default="127.0.0.1")
    connect.add_argument("--port", type=int, default=8768)
    connect.set_defaults(func=_connect_sandbox)

    app = commands.add_parser("zendesk-app", help="the Zendesk app package")
    app_commands = app.add_subparsers(dest="app_command", required=True)
    build = app_commands.add_parser("build", help="build the zip to upload to Zendesk")
    build.add_argument("--out", required=True, help="directory to write the zip to")
    build.add_argument(
        "--url", required=True, help="https:// address of Switchboard's app listener"
    )
    build.set_defaults(func=_build_zendesk_app)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
