"""Load the YAML config: parse, interpolate `${ENV}`, validate, cross-check.

Every problem becomes one `ConfigError` whose lines read
`FILE: key.path[2]: what is wrong`, so a user can go straight to the key.
Interpolation runs on parsed string values, never on the raw text, so an
environment value can't inject YAML structure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from monitor.config.models import Config

_ENV_REF = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)\})")
# Values under these keys are never echoed back in an error message.
_SECRET_KEYS = frozenset({"password", "token", "secret", "routing_key"})


class ConfigError(Exception):
    """The config can't be used; `str()` lists every problem, one per line."""

    def __init__(self, source: Path | str, problems: list[tuple[str, str]]) -> None:
        self.source = str(source)
        self.problems = problems
        lines = [f"{self.source}: {path}: {what}" if path else f"{self.source}: {what}"
                 for path, what in problems]
        super().__init__("\n".join(lines))


def default_config_path() -> Path:
    return Path(os.environ.get("MONITOR_CONFIG", "config/monitor.yaml"))


def load_config(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate a config file; raise ConfigError on any problem."""
    source = Path(path) if path is not None else default_config_path()
    environ = os.environ if env is None else env
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [("", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f"line {mark.line + 1}, column {mark.column + 1}: "
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [("", f"{where}invalid YAML: {problem}")]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, [("", "the top level must be a mapping of sections")])

    problems: list[tuple[str, str]] = []
    data = _interpolate(raw, "", environ, problems)
    if problems:
        raise ConfigError(source, problems)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, list(_describe(exc))) from None
    problems = list(_cross_check(config))
    if problems:
        raise ConfigError(source, problems)
    return config.model_copy(update={"source": source})


def _interpolate(
    value: Any, path: str, env: Mapping[str, str], problems: list[tuple[str, str]]
) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, _join(path, k), env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]", env, problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(2)
        if name is None:  # "$$" escapes a literal dollar
            return "$"
        if name not in env:
            problems.append((path, f"environment variable {name} is not set"))
            return ""
        return env[name]

    return _ENV_REF.sub(substitute, value)


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, part)
    return path


def _describe(exc: ValidationError) -> Iterator[tuple[str, str]]:
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        kind = error["type"]
        message = str(error["msg"]).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        elif (loc and loc[-1] not in _SECRET_KEYS and _is_scalar(error.get("input"))
              and str(error.get("input")) not in message):
            message = f"{message} (got {error['input']!r})"
        yield _loc_to_path(loc), message


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _cross_check(config: Config) -> Iterator[tuple[str, str]]:
    for section in ("providers", "mailboxes", "subscriptions"):
        seen: set[str] = set()
        for i, item in enumerate(getattr(config, section)):
            if item.name in seen:
                yield f"{section}[{i}].name", f"duplicate name {item.name!r}"
            seen.add(item.name)
    mailbox_names = {m.name for m in config.mailboxes}
    for i, provider in enumerate(config.providers):
        for j, target in enumerate(provider.to):
            if "@" not in target and target not in mailbox_names:
                yield (f"providers[{i}].to[{j}]",
                       f"{target!r} is neither an address nor a configured mailbox")
