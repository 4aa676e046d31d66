"""Load the YAML config: parse, interpolate `${ENV}`, validate, cross-check.

Every problem becomes one `ConfigError` whose lines read
`FILE: key.path[2]: what is wrong`, so a user can go straight to the key.
Interpolation runs on parsed string values, never on the raw text, so an
environment value can't inject YAML structure, and a value that came from the
environment is never shown in an error (it may be a secret in the wrong key).

The YAML is read with limits checked while it is composed, before anything is
built: at most 4 MiB, 250,000 nodes, 32 levels, no aliases (eight levels of
`*alias` in 342 bytes expand to a billion strings), no duplicate keys.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode

from monitor.config.models import Config

_ENV_REF = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)\})")
# Values under these keys are never echoed back in an error message.
_SECRET_KEYS = frozenset({"password", "token", "secret", "routing_key"})
_HIDDEN = "invalid value (not shown: it comes from the environment)"
# A config is a few KiB and a few hundred nodes, five levels deep; 5,000 send
# providers with credentials are about 1.5 MiB and 150,000 nodes.
_MAX_BYTES = 4 * 1024 * 1024
_MAX_NODES = 250_000
_MAX_DEPTH = 32
_MERGE_TAG = "tag:yaml.org,2002:merge"


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
    try:
        return _load(source, os.environ if env is None else env)
    # The limits below should make these unreachable; if not, still an error, not a traceback.
    except RecursionError:
        raise ConfigError(source, [("", "nested too deeply to load")]) from None
    except MemoryError:
        raise ConfigError(source, [("", "too large to load")]) from None
    except (ValueError, OverflowError) as exc:  # text not shown: it may hold a value
        raise ConfigError(source, [("", f"a value is out of range ({type(exc).__name__})")]
                          ) from None


def _load(source: Path, environ: Mapping[str, str]) -> Config:
    text = _read(source)
    try:
        raw = _Loader(text).get_single_data()
    except _Refused as exc:
        raise ConfigError(source, [(exc.path, f"{_line_column(exc.mark)}{exc.problem}")]
                          ) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, such as NUL
        where = _line_column_of(text, exc.position)
        problem = f"unacceptable character #x{exc.character:04x}: {exc.reason}"
        raise ConfigError(source, [("", f"{where}invalid YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        where = _line_column(getattr(exc, "problem_mark", None))
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [("", f"{where}invalid YAML: {problem}")]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, [("", "the top level must be a mapping of sections")])

    problems: list[tuple[str, str]] = []
    interpolated: dict[str, list[str]] = {}
    data = _interpolate(raw, "", environ, problems, interpolated)
    if problems:
        raise ConfigError(source, problems)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, list(_describe(exc, interpolated, data))) from None
    problems = list(_cross_check(config, interpolated))
    if problems:
        raise ConfigError(source, problems)
    return config.model_copy(update={"source": source})


def _read(source: Path) -> str:
    try:
        with source.open("rb") as file:
            data = file.read(_MAX_BYTES + 1)  # never more, whatever the path is
    except OSError as exc:
        raise ConfigError(source, [("", f"cannot read: {exc.strerror or exc}")]) from None
    if len(data) > _MAX_BYTES:
        raise ConfigError(source, [("", "the file is larger than 4 MiB")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, line_start) + 1
        column = len(data[line_start:exc.start].decode("utf-8")) + 1  # valid up to the bad byte
        problem = f"line {line}, column {column}: not valid UTF-8 (byte 0x{data[exc.start]:02x})"
        raise ConfigError(source, [("", problem)]) from None


class _Mark(Protocol):  # yaml.error.Mark or the C extension's Mark
    line: int
    column: int


def _line_column(mark: _Mark | None) -> str:
    return "" if mark is None else f"line {mark.line + 1}, column {mark.column + 1}: "


def _line_column_of(text: str, position: int) -> str:
    line, line_start = text.count("\n", 0, position) + 1, text.rfind("\n", 0, position) + 1
    return f"line {line}, column {position - line_start + 1}: "


class _Refused(Exception):
    """A YAML document the loader won't build: where, and why."""

    def __init__(self, path: str, mark: _Mark | None, problem: str) -> None:
        super().__init__(problem)
        self.path, self.mark, self.problem = path, mark, problem


class _Loader(yaml.SafeLoader):
    """SafeLoader with the limits checked as nodes are composed, before any is built."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = 0
        # Key path of the node being composed; None stands for a mapping key.
        self._path: list[str | int | None] = []

    def compose_node(self, parent: Node | None, index: object) -> Node | None:
        event: yaml.NodeEvent = self.peek_event()  # type: ignore[no-untyped-call]
        segment = index if isinstance(index, int) else (
            str(index.value) if isinstance(index, ScalarNode) else None)
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(self._where(segment), event.start_mark,
                           f"YAML aliases are not supported (found *{event.anchor}); "
                           "write the value out")
        self._nodes += 1
        if self._nodes > _MAX_NODES:
            raise _Refused("", event.start_mark, f"more than {_MAX_NODES} YAML nodes")
        if len(self._path) >= _MAX_DEPTH:
            raise _Refused("", event.start_mark, f"YAML nested deeper than {_MAX_DEPTH} levels")
        self._path.append(segment)
        try:
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        finally:
            self._path.pop()

    def compose_mapping_node(self, anchor: Any) -> MappingNode:
        node = super().compose_mapping_node(anchor)
        seen: set[tuple[str, str]] = set()
        for key, _ in node.value:
            # PyYAML keeps the last of two equal keys; `<<` merges are not duplicates.
            if isinstance(key, ScalarNode) and key.tag != _MERGE_TAG:
                if (key.tag, key.value) in seen:
                    raise _Refused(self._where(), key.start_mark,
                                   f"duplicate key {key.value!r}")
                seen.add((key.tag, key.value))
        return node

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:  # such as the date 2001-13-45
            raise ConstructorError(None, None, str(exc), node.start_mark) from None

    def _where(self, *more: str | int | None) -> str:
        return _loc_to_path(tuple(part for part in (*self._path, *more) if part is not None))


def _interpolate(
    value: Any, path: str, env: Mapping[str, str], problems: list[tuple[str, str]],
    interpolated: dict[str, list[str]],
) -> Any:
    """Substitute `${NAME}`; record in `interpolated` each path's environment values."""
    if isinstance(value, dict):
        return {k: _interpolate(v, _join(path, k), env, problems, interpolated)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]", env, problems, interpolated)
                for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(2)
        if name is None:  # "$$" escapes a literal dollar
            return "$"
        if name not in env:
            problems.append((path, f"environment variable {name} is not set"))
            return ""
        interpolated.setdefault(path, []).append(env[name])
        return env[name]

    return _ENV_REF.sub(substitute, value)


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, part)
    return path


def _describe(
    exc: ValidationError, interpolated: Mapping[str, list[str]], data: Any = None
) -> Iterator[tuple[str, str]]:
    for error in (_as_written(e, data) for e in exc.errors(include_url=False)):
        loc = tuple(error["loc"])
        path = _loc_to_path(loc)
        kind = error["type"]
        message = str(error["msg"]).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            message = "unknown key"
        elif kind == "missing":
            message = "required key is missing"
        elif path in interpolated:  # never `(got ...)`, nor a message that quotes it
            shown = [str(error.get("input")), *interpolated[path]]
            if any(value and value in message for value in shown):
                message = _HIDDEN
        elif (loc and loc[-1] not in _SECRET_KEYS and _is_scalar(error.get("input"))
              and str(error.get("input")) not in message):
            message = f"{message} (got {error['input']!r})"
        yield path, message


def _as_written(error: Mapping[str, Any], data: Any) -> dict[str, Any]:
    """`error` in terms of the keys the user wrote. A union discriminated on `kind`
    puts the item's tag into the location (`mailboxes.0.imap.host`): it is dropped.
    A missing or unknown tag is reported at the union item: it goes on its key, as
    the error of an ordinary enum field would."""
    loc = _without_tags(tuple(error["loc"]), data)
    ctx = error.get("ctx") or {}
    key = str(ctx.get("discriminator", "")).strip("'")
    if error["type"] == "union_tag_not_found" and key:
        return {**error, "loc": (*loc, key), "type": "missing"}
    if error["type"] == "union_tag_invalid" and key:
        head, comma, last = str(ctx["expected_tags"]).rpartition(", ")  # "'a', 'b', 'c'"
        expected = f"{head} or {last}" if comma else last
        return {**error, "loc": (*loc, key), "msg": f"Input should be {expected}",
                "input": ctx.get("tag")}
    return {**error, "loc": loc}


def _without_tags(loc: tuple[int | str, ...], data: Any) -> tuple[int | str, ...]:
    """`loc` without the part after an item that equals the item's `kind` (once: the
    next part is a key again, even one spelt like the kind)."""
    parts: list[int | str] = []
    node, tag_dropped = data, False
    for part in loc:
        if not tag_dropped and isinstance(node, dict) and isinstance(part, str) and (
                node.get("kind") == part):
            tag_dropped = True
            continue
        parts.append(part)
        tag_dropped = False
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(parts)


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _cross_check(
    config: Config, interpolated: Mapping[str, list[str]]
) -> Iterator[tuple[str, str]]:
    def shown(value: str, path: str) -> str:
        return "the value from the environment" if path in interpolated else repr(value)

    for section in ("providers", "mailboxes", "subscriptions"):
        seen: set[str] = set()
        for i, item in enumerate(getattr(config, section)):
            path = f"{section}[{i}].name"
            if item.name in seen:
                yield path, f"duplicate name {shown(item.name, path)}"
            seen.add(item.name)
    mailbox_names = {m.name for m in config.mailboxes}
    for i, provider in enumerate(config.providers):
        for j, target in enumerate(provider.to):
            if "@" not in target and target not in mailbox_names:
                path = f"providers[{i}].to[{j}]"
                yield path, f"{shown(target, path)} is neither an address nor a configured mailbox"
