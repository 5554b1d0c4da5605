"""Configuration sources merged into one plain dict before validation: YAML files (later wins) and `--set a.b=v`
overrides (YAML-typed values); and pydantic's validation errors turned into sentences that name the key."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from behaviorlm.errors import ConfigError


def merge_sources(paths: list[str], overrides: list[str], root: type[BaseModel]) -> dict[str, Any]:
    """The files' mappings deep-merged in order, then each `key=value` override set on the result."""
    merged: dict[str, Any] = {}
    for path in paths:
        if not Path(path).is_file():
            raise ConfigError(f"config file not found: {path}")
        with open(path, encoding="utf-8") as fh:
            try:
                data = yaml.safe_load(fh) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(exc).split())}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path}: top level must be a mapping, got {type(data).__name__}")
        _deep_merge(merged, data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        _set_override(merged, key.strip(), _value(raw), root)
    return merged


def _value(raw: str) -> Any:
    """An override's value read as YAML (numbers, booleans, lists, mappings, `""` for an empty text), or as the text
    it is where YAML reads a lone sign as syntax: `sep=,`, `sep=|` and `sep=-` mean a comma, a bar and a dash. A list,
    mapping or quoted text YAML cannot read is a `ConfigError`."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        if raw.lstrip()[:1] in ("{", "[", '"', "'"):
            raise ConfigError(f"--set value {raw!r} is not valid YAML: {' '.join(str(exc).split())}") from None
        return raw
    text = raw.strip()
    if text in ("-", "?") or (value in ("", None) and text and text[0] not in "\"'~!" and text.lower() != "null"):
        return raw  # a sign YAML reads as syntax (a block scalar, a list or key marker), not an empty value
    return value


_EXPECTED = {"int_type": "an integer", "float_type": "a number", "string_type": "a string", "bool_type": "true/false",
             "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping"}  # fmt: skip


def describe(error: dict[str, Any]) -> str:
    """One pydantic error as a sentence naming the config key."""
    key = ".".join(str(part) for part in error["loc"])
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return f"unknown config key '{key}'"
    if kind in _EXPECTED:
        return f"config key '{key}': expected {_EXPECTED[kind]}, got {value!r}"
    if kind == "literal_error":
        return f"config key '{key}': {value!r} is not one of {error['ctx']['expected']}"
    message = error["msg"].removeprefix("Value error, ")
    return f"config key '{key}': {message}" if key else f"config: {message}"


def _set_override(merged: dict[str, Any], key: str, value: Any, root: type[BaseModel]) -> None:
    """Set a dotted key; inside a mapping-typed field (e.g. `spark.conf`) the rest of the key is one dict key, so
    `--set spark.conf.spark.sql.shuffle.partitions=4` works."""
    node: dict[str, Any] = merged
    model: type[BaseModel] | None = root
    parts = key.split(".")
    while len(parts) > 1:
        part = parts.pop(0)
        field = model.model_fields.get(part) if model else None
        if node.get(part) is None:  # an optional mapping left null in a file (items_source_options: null)
            node[part] = {}
        child = node[part]
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part!r} is not a section")
        node = child
        annotation = field.annotation if field else None
        if annotation is not None and _is_mapping(annotation):
            parts = [".".join(parts)]
            break
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    node[parts[0]] = value


def _is_mapping(annotation: Any) -> bool:
    """A dict field, or an optional one (`dict[...] | None`)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_mapping(arg) for arg in typing.get_args(annotation))
    return typing.get_origin(annotation) is dict


def _deep_merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value
