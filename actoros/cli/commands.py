"""``actoros model``, ``actoros validate`` and ``actoros top``."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from ._common import (
    Subcommands,
    UsageError,
    import_part,
    load_config_or_report,
    positive_float,
)


def add_model(subcommands: Subcommands) -> None:
    model = subcommands.add_parser(
        "model", help="manage local models", description="Download and list local models."
    )
    actions = model.add_subparsers(dest="action", metavar="ACTION", required=True)
    pull = actions.add_parser(
        "pull",
        help="download a model and prepare it for vLLM",
        description="Download a model into the local cache (~/.cache/actoros/models, or "
        "$ACTOROS_HOME) and print its folder.",
    )
    pull.add_argument("name", nargs="?", help="model name (default: the CPU default model)")
    pull.set_defaults(handler=_model_pull)
    listing = actions.add_parser("list", help="list the models in the local cache")
    listing.set_defaults(handler=_model_list)


def _model_pull(args: argparse.Namespace) -> int:
    models = import_part("actoros.inference.models", "actoros model")
    name = args.name if args.name is not None else models.DEFAULT_MODEL
    try:
        path = models.pull(name)
    except models.ModelError as exc:  # unknown name, no network, ...: the message says what to do
        raise UsageError(str(exc)) from exc
    sys.stdout.write(f"{path}\n")
    return 0


def _model_list(args: argparse.Namespace) -> int:
    models = import_part("actoros.inference.models", "actoros model")
    found = models.list_models()
    if not found:
        sys.stderr.write("no models in the local cache; run 'actoros model pull'\n")
    for model in found:
        sys.stdout.write(f"{model}\n")
    return 0


def add_validate(subcommands: Subcommands) -> None:
    validate = subcommands.add_parser(
        "validate",
        help="check a config file",
        description="Check a config file; print 'FILE: ok (...)' and exit 0, or print one "
        "line per problem ('FILE:LINE: PATH: problem') and exit 2.",
    )
    validate.add_argument("file", type=Path, metavar="FILE", help="the config file (YAML)")
    validate.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace) -> int:
    config = load_config_or_report(args)
    if config is None:
        return 2
    sys.stdout.write(
        f"{args.file}: ok ({len(config.agents)} agents, {len(config.groups)} groups)\n"
    )
    return 0


def add_top(subcommands: Subcommands) -> None:
    top = subcommands.add_parser(
        "top",
        help="watch a running system's actors in the terminal",
        description="Show the supervision tree of a running system (paths, kind, state, "
        "restarts, mailbox depth, messages processed) and its inference numbers, read from its "
        "gateway's /api/tree and refreshed until Ctrl-C. CONFIG_OR_URL: the gateway's URL "
        "(http://HOST:PORT) or the config file the system runs (its gateway: section says "
        "where). Exit 1 when the gateway cannot be reached, 2 on a usage error.",
    )
    top.add_argument("target", metavar="CONFIG_OR_URL", help="a gateway URL or a config file")
    top.add_argument(
        "--interval",
        type=positive_float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between refreshes (default: %(default)s)",
    )
    top.add_argument("--once", action="store_true", help="print one frame and exit")
    top.add_argument(
        "--token",
        metavar="TOKEN",
        help="the gateway's bearer token (default: $ACTOROS_TOKEN, else the config's first)",
    )
    top.set_defaults(handler=_top)


def _top(args: argparse.Namespace) -> int:
    import os

    top = import_part("actoros.gateway.top", "actoros top")
    target: str = args.target
    token = args.token or os.environ.get("ACTOROS_TOKEN") or None
    hint = "CONFIG"
    try:
        if target.startswith(("http://", "https://")):
            url = target.rstrip("/")
        else:
            from actoros.config import ConfigError, load_config

            try:
                config = load_config(Path(target))
            except ConfigError as exc:
                if args.debug:
                    traceback.print_exception(exc, file=sys.stderr)
                for line in exc.lines():
                    sys.stderr.write(f"{line}\n")
                return 2
            url = top.gateway_url(config, source=target)
            token = token or top.config_token(config)
            hint = target
        return int(
            top.watch(url, token=token, interval=args.interval, once=args.once, start_hint=hint)
        )
    except top.TopError as exc:
        sys.stderr.write(f"actoros: error: {exc}\n")
        return exc.status
