"""A Markdown reference of every config key, generated from the models' fields."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _model_in(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in typing.get_args(tp):
        found = _model_in(arg)
        if found:
            return found
    return None


def _show(value: Any) -> str:
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if isinstance(value, Path):
        value = str(value)
    return f"`{json.dumps(value)}`" if not isinstance(value, str) else f"`{value}`"


def _rows(model: type[BaseModel], prefix: str, defaults: BaseModel | None = None) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        sub = _model_in(field.annotation)
        required = field.default is PydanticUndefined and field.default_factory is None
        if defaults is not None:
            value = getattr(defaults, name)
        elif not required:
            value = field.get_default(call_default_factory=True)
        if sub is not None:
            if typing.get_origin(field.annotation) is list:
                rows += _rows(sub, f"{path}[].")
            else:
                rows += _rows(sub, f"{path}.", None if required else value)
            continue
        default = "**required**" if required and defaults is None else _show(value)
        text = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{path}` | {_type_name(field.annotation)} | {default} | {text} |")
    return rows


def reference(title: str, model: type[BaseModel]) -> str:
    head = ["| key | type | default | meaning |", "|---|---|---|---|"]
    return f"## {title}\n\n" + "\n".join(head + _rows(model, "")) + "\n"
