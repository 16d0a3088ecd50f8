"""Command line: ``mockserver serve | check | conformance | cassettes ...``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import DEFAULT_UPSTREAM, LOOPS, MODES, UPSTREAM_KEY_ENV, Settings
from .profile import DEFAULT_PROFILE, load_profile
from .wire.errors import ConfigError

DESCRIPTION = """\
A record/replay mock of the Anthropic Messages API as served by deepseek-v3-anthropic.
Point any Anthropic client at it: ANTHROPIC_BASE_URL=http://127.0.0.1:PORT."""

#: subcommands implemented in their own modules: name -> module with add_parser(sub)
_SUBCOMMANDS = ("contract.check", "contract.suite", "cassettes.cli", "sources.rules.cli")


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = sub.add_parser(
        "serve",
        help="run the mock server",
        description="Run the mock server. With no flags it serves the shipped example cassettes "
        "and synthesizes everything else (mode auto) on http://127.0.0.1:8080.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "modes:\n"
            "  auto        replay what the cassettes hold, synthesize the rest (default)\n"
            "  replay      cassettes only; a miss is a 404 naming the nearest recorded request\n"
            "  synth       synthesize every reply (deterministic for a request and --seed)\n"
            "  record      forward everything to --upstream and record every exchange\n"
            "  record-new  replay hits, forward and record misses\n\n"
            f"Recording uses the client's own key, or ${UPSTREAM_KEY_ENV} when the client sends none."
        ),
    )
    sp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sp.add_argument("--port", type=int, default=8080, help="port (0 = any free port; default 8080)")
    sp.add_argument("--mode", choices=MODES, default="auto", help="where replies come from")
    sp.add_argument("--cassettes", type=Path, help="cassette directory (default: shipped examples)")
    sp.add_argument("--upstream", default=DEFAULT_UPSTREAM, help="real endpoint to record from")
    sp.add_argument(
        "--profile", default=DEFAULT_PROFILE, help="built-in profile name or a YAML file path"
    )
    sp.add_argument(
        "--set",
        action="append",
        default=[],
        dest="profile_settings",
        metavar="KEY=VALUE",
        help="change one profile key (repeatable), validated like the profile file, e.g. "
        "--set max_tokens_over_limit=clamp or --set cache.policy=breakpoints",
    )
    sp.add_argument(
        "--timing", default="instant", help="instant | recorded | SPEEDx (e.g. 4x) for replays"
    )
    sp.add_argument(
        "--api-key",
        action="append",
        default=[],
        dest="api_keys",
        help="accept only this key (repeatable; default: any non-empty key)",
    )
    sp.add_argument("--seed", type=int, default=0, help="seed of synthesized replies")
    sp.add_argument(
        "--strict-sequence",
        action="store_true",
        help="a repeated request past its recorded sequence is a miss instead of repeating the last",
    )
    sp.add_argument(
        "--admin-token",
        help="require this token on every /_mockserver/ call (generated and printed when the "
        "server binds a non-loopback address without one)",
    )
    sp.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        dest="allowed_hosts",
        metavar="NAME",
        help="another Host name the admin API and inspector answer to (repeatable; by default "
        "only the bound address, and localhost for a loopback bind)",
    )
    sp.add_argument(
        "--no-admin",
        action="store_true",
        help="serve no admin API and no inspector (every /_mockserver/ path is a 404)",
    )
    sp.add_argument("--faults", type=Path, dest="fault_config", help="YAML file of fault rules")
    sp.add_argument(
        "--rules",
        type=Path,
        action="append",
        default=[],
        dest="rule_files",
        metavar="FILE",
        help="scripted replies: a rules file, or a directory of *.yaml (repeatable); a rule "
        "that holds answers before synth (after a cassette hit)",
    )
    sp.add_argument(
        "--ignore",
        action="append",
        default=[],
        dest="ignore_paths",
        help="JSON path left out of request matching (repeatable), e.g. $.metadata",
    )
    sp.add_argument("--no-validate", action="store_true", help="skip contract checks on records")
    sp.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes sharing the port; they share one state (sequences, fault and rule "
        "counts, admin-added rules, prompt cache, usage, journal) in a private SQLite file",
    )
    sp.add_argument(
        "--state",
        metavar="URL",
        help="share the state with every mockserver on this Redis (replicas behind a load "
        "balancer): redis://[:PASSWORD@]HOST:PORT/DB",
    )
    sp.add_argument(
        "--state-prefix",
        default="mockserver:",
        metavar="PREFIX",
        help="prefix of every key in the --state Redis (default mockserver:), so that "
        "several mocks can share one Redis",
    )
    sp.add_argument(
        "--read-timeout",
        type=float,
        default=60.0,
        help="seconds a client gets to send its request headers, and again its body (default 60)",
    )
    sp.add_argument(
        "--loop",
        choices=LOOPS,
        default=None,
        help="event loop: uvloop (the default where it is installed: it is a dependency on "
        "Linux and macOS; faster) or asyncio (the standard library's)",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings(
        host=args.host,
        port=args.port,
        mode=args.mode,
        cassettes=args.cassettes,
        upstream=args.upstream,
        profile=load_profile(args.profile, tuple(args.profile_settings)),
        timing=args.timing,
        api_keys=tuple(args.api_keys),
        seed=args.seed,
        strict_sequence=args.strict_sequence,
        admin_token=args.admin_token,
        admin=not args.no_admin,
        allowed_hosts=tuple(args.allowed_hosts),
        validate=not args.no_validate,
        ignore_paths=tuple(args.ignore_paths),
        fault_config=args.fault_config,
        rule_files=tuple(args.rule_files),
        workers=args.workers,
        state=args.state,
        state_prefix=args.state_prefix,
        read_timeout=args.read_timeout,
        loop=args.loop,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mockserver",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _serve_parser(sub)
    for name in _SUBCOMMANDS:
        try:
            module = importlib.import_module(f"mockserver.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"mockserver.{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "serve":
            from .server.running import run

            return run(settings_from_args(args))
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        print(f"mockserver: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
