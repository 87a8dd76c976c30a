"""Who may call the gateway, and which agents each caller may reach.

Tokens come from ``gateway.tokens`` in the config: the secret written there or read from the
environment variable ``token_env`` names (read once, when the gateway starts; a missing
variable is a config error naming it). A request carries ``Authorization: Bearer <secret>``.
Without tokens configured nobody is asked for one — the config checks keep such a gateway on
a loopback address — and every caller may reach every agent.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping

import msgspec

from actoros.config import ConfigError, GatewayConfig, Problem

from .errors import APIError

__all__ = ["ALL", "Caller", "Credential", "TokenAuth", "gateway_auth", "resolve_tokens"]

ALL = "*"


class Caller(msgspec.Struct, frozen=True):
    """Who is asking: the token's ``name`` (``None`` without auth) and the agents it may reach
    (``"*"`` among them: every agent and, if allowed, the raw model)."""

    name: str | None
    agents: frozenset[str]

    def may_reach(self, model: str) -> bool:
        return ALL in self.agents or model in self.agents


ANYONE = Caller(None, frozenset({ALL}))


class Credential(msgspec.Struct, frozen=True):
    name: str
    secret: str
    agents: frozenset[str]


def resolve_tokens(
    config: GatewayConfig, environ: Mapping[str, str] | None = None
) -> tuple[Credential, ...]:
    """The configured tokens with their secrets; ``ConfigError`` when an env var is unset."""
    env = os.environ if environ is None else environ
    credentials = []
    problems = []
    for i, token in enumerate(config.tokens):
        secret = token.token
        if token.token_env is not None:
            secret = env.get(token.token_env) or None
            if secret is None:
                problems.append(
                    Problem(
                        f"gateway.tokens[{i}].token_env",
                        None,
                        f"environment variable {token.token_env} is not set (or empty): "
                        f"export it before starting, or give 'token'",
                    )
                )
                continue
        assert secret is not None  # the config checks demand token or token_env
        credentials.append(Credential(token.name, secret, frozenset(token.agents)))
    if problems:
        raise ConfigError("config", problems)
    return tuple(credentials)


class TokenAuth:
    """Checks the ``Authorization`` header against the tokens (none: everyone may call)."""

    def __init__(self, credentials: tuple[Credential, ...]) -> None:
        self.credentials = credentials

    def caller(self, authorization: str | None) -> Caller:
        """The caller a request's ``Authorization`` header names; ``APIError`` 401 otherwise."""
        if not self.credentials:
            return ANYONE
        scheme, _, secret = (authorization or "").partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise APIError(
                401,
                "You didn't provide an API key. Send 'Authorization: Bearer <token>' with one "
                "of the tokens in the config's gateway.tokens.",
                code="invalid_api_key",
            )
        given = secret.encode()
        found = None
        for credential in self.credentials:  # compare with every token: no early exit
            if hmac.compare_digest(given, credential.secret.encode()):
                found = credential
        if found is None:
            raise APIError(
                401,
                f"Incorrect API key provided: {_redact(secret)}. Use one of the tokens in the "
                "config's gateway.tokens.",
                code="invalid_api_key",
            )
        return Caller(found.name, found.agents)


def gateway_auth(gateway: GatewayConfig | None) -> TokenAuth:
    """The auth of a gateway configured as ``gateway`` (``None``: no section, no tokens)."""
    return TokenAuth(resolve_tokens(gateway) if gateway is not None else ())


def _redact(secret: str) -> str:
    return secret[:3] + "…" + secret[-2:] if len(secret) > 8 else "…"
