"""Loads a YAML config into a pydantic model, with environment overrides for secrets, and
turns every validation failure into a message that names the file, the line, the key path,
the bad value and what would be valid.

Two ways to keep secrets out of files:
- `${NAME}` (or `${NAME:-default}`) anywhere in a string value is replaced by that variable;
- `<PREFIX>__KEY__SUBKEY=value` sets a key, e.g. `OSPREY_EDGE__MQTT__PASSWORD=...`
  (list items by index: `OSPREY_EDGE__CAMERAS__0__URL=...`).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from edge_agent.core.errors import ConfigError
from edge_agent.core.logs import redact, register_secret

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]

_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_SECRET_KEYS = {"password", "token", "secret"}


@dataclass(frozen=True)
class Problem:
    loc: Loc
    value: str | None
    message: str
    where: str

    @property
    def path(self) -> str:
        return format_loc(self.loc)

    def __str__(self) -> str:
        got = "" if self.value is None else f" = {self.value}"
        return f"{self.where}: {self.path or '(top level)'}{got}: {self.message}"


class ConfigFileError(ConfigError):
    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        n = len(problems)
        lines = [f"{file}: invalid configuration ({n} problem{'s' if n > 1 else ''})"]
        lines += [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_config(model: type[M], path: str | Path, env_prefix: str,
                environ: Mapping[str, str] | None = None) -> M:
    """Read, interpolate, override and validate one config file."""
    environ = os.environ if environ is None else environ
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file; start from the examples in configs/") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        raise ConfigError(f"{where}: not valid YAML: {exc.problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{file}: the top level must be a mapping of keys (like `mqtt:`), "
            f"got a {type(data).__name__}"
        )
    problems: list[Problem] = []
    sources: dict[Loc, str] = {}
    data = _interpolate(data, (), environ, problems, file, root)
    _apply_env(data, env_prefix, environ, sources, problems)
    if problems:
        raise ConfigFileError(file, problems)
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigFileError(file, _problems(exc, model, file, root, sources)) from None
    _register_secrets(config)
    return config


def validate_flags(model: type[M], data: dict[str, Any], flags: Mapping[Loc, str],
                   what: str = "command line") -> M:
    """Validate `data` built from command-line flags; a problem is reported in the config
    errors' format, at the flag that set the value (`flags`: config location -> flag)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        sources = {loc: f"{what} ({flag})" for loc, flag in flags.items()}
        raise ConfigFileError(what, _problems(exc, model, what, None, sources)) from None


# The flags that set a detector's fields in the commands that take a model (detect, eval, ...).
MODEL_FLAGS: dict[Loc, str] = {("path",): "--model", ("layout",): "--layout",
                               ("classes_file",): "--classes", ("score_threshold",): "--score"}


def flag_error(exc: ValidationError, flags: Mapping[Loc, str] = MODEL_FLAGS
               ) -> ConfigFileError:
    """A validation error of values given on the command line, in the config errors' format
    (at the flag that set the value, where `flags` knows it)."""
    what = "command line"
    sources = {loc: f"{what} ({flag})" for loc, flag in flags.items()}
    return ConfigFileError(what, _problems(exc, BaseModel, what, None, sources))


def _interpolate(value: Any, loc: Loc, environ, problems, file, root) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*loc, k), environ, problems, file, root)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), environ, problems, file, root)
                for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        if m["name"] in environ:
            register_secret(environ[m["name"]])
            return environ[m["name"]]
        if m["default"] is not None:
            return m["default"]
        problems.append(Problem(
            loc, None, f"environment variable {m['name']} is not set (export it, or write "
            f"${{{m['name']}:-default}})", _where(file, root, loc)))
        return m[0]

    return _VAR.sub(sub, value)


def _apply_env(data: dict, prefix: str, environ, sources, problems) -> None:
    head = prefix + "__"
    for key in sorted(k for k in environ if k.startswith(head)):
        loc: Loc = tuple(int(p) if p.isdigit() else p.lower()
                         for p in key[len(head):].split("__"))
        try:
            _set(data, loc, environ[key])
        except (KeyError, IndexError, TypeError, AttributeError):
            problems.append(Problem(
                loc, None, "does not fit the config: a list item that does not exist, or a key "
                "under a plain value", f"env {key}"))
            continue
        sources[loc] = f"env {key}"
        if str(loc[-1]) in _SECRET_KEYS:
            register_secret(environ[key])


def _set(node: Any, loc: Loc, value: str) -> None:
    for part in loc[:-1]:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    last = loc[-1]
    if isinstance(last, int):
        node[last]
    elif not isinstance(node, dict):
        raise TypeError(loc)
    node[last] = value


def _problems(exc: ValidationError, model, file, root, sources) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False):
        loc: Loc = tuple(p for p in err["loc"] if isinstance(p, int) or "[" not in p)
        where = next((sources[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in sources),
                     None) or _where(file, root, loc)
        out.append(Problem(loc, _show(loc, err), _message(err, loc, model), where))
    return sorted(out, key=lambda p: int(p.where.rpartition(":")[2] or 0)
                  if p.where.rpartition(":")[2].isdigit() else 1 << 30)


def _show(loc: Loc, err: dict) -> str | None:
    if err["type"] == "missing":
        return None
    if loc and str(loc[-1]) in _SECRET_KEYS:
        return "'***'"
    value = err.get("input")
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, dict | list):
        text = repr(value)
        return redact(text if len(text) <= 60 else text[:57] + "...")
    return redact(repr(value))


def _message(err: dict, loc: Loc, model: type[BaseModel]) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        valid = _fields_at(model, loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        text = f"unknown key; valid keys here: {', '.join(valid)}"
        return text + (f" (did you mean {hint[0]!r}?)" if hint else "")
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return msg.replace("Input should be", "must be").replace("Input ", "value ")


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """Field names of the sub-model that `loc` points into."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if _is_model(current) else None
        if field is None:
            return []
        current = _inner_model(field.annotation)
    return list(current.model_fields) if _is_model(current) else []


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _inner_model(tp: Any) -> Any:
    if _is_model(tp):
        return tp
    for arg in getattr(tp, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _where(file: str, root: yaml.Node | None, loc: Loc) -> str:
    """`file:line` of the deepest YAML node along `loc` (the key itself when it is unknown)."""
    node, line = root, None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return f"{file}:{line}" if line else file


def _register_secrets(config: BaseModel) -> None:
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, SecretStr):
            register_secret(value.get_secret_value())
        elif isinstance(value, BaseModel):
            _register_secrets(value)
        elif isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, BaseModel):
                    _register_secrets(item)


def dump_config(config: BaseModel) -> str:
    """The effective config as YAML, secrets masked."""
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    return redact(text)
