"""Typed configuration loaded from YAML files and ``--set`` overrides.

``conf/base.yaml`` is always loaded first; further files are merged on top in the order
given, then ``--set dotted.key=value`` overrides. The merged tree is converted into the
frozen dataclasses of :mod:`recsys_spark.settings`, and every problem (an unknown key, a
wrong type, a value outside its choices, a missing required value) raises
:class:`ConfigError` naming the key, the file that set it and the expected type.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

import yaml

from recsys_spark import settings

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"
BASE_FILE = "base.yaml"
MISSING_FROM = "(no file: value never set)"


class ConfigError(ValueError):
    """A configuration value is unknown, missing or of the wrong type."""


def _merge(
    into: dict[str, Any], update: Mapping[str, Any], origin: str, origins: dict[str, str], prefix=""
) -> None:
    """Merge ``update`` into ``into`` recursively, recording which file set each key."""
    for key, value in update.items():
        if not isinstance(key, str):
            raise ConfigError(f"{origin}: key {key!r} under '{prefix or '<top>'}' is not a string.")
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value, origin, origins, dotted + ".")
        else:
            into[key] = _plain(value)
            origins[dotted] = origin
            if isinstance(value, Mapping):
                for sub in _leaf_keys(value, dotted + "."):
                    origins[sub] = origin


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _leaf_keys(tree: Mapping[str, Any], prefix: str) -> Iterable[str]:
    for key, value in tree.items():
        yield f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _leaf_keys(value, f"{prefix}{key}.")


def resolve_config_path(name: str | os.PathLike) -> Path:
    """Find a config file given as a path or as a name inside ``conf/``."""
    path = Path(name)
    # Under spark-submit in cluster deploy mode the package runs from a zip and the files
    # shipped with --files sit in the driver's working folder, by their base names.
    conf_dirs = [Path(os.environ["RECSYS_CONF_DIR"])] if os.environ.get("RECSYS_CONF_DIR") else []
    conf_dirs += [CONF_DIR, Path.cwd()]
    candidates = [path]
    for folder in conf_dirs:
        candidates.append(folder / path.name)
        if path.suffix not in (".yaml", ".yml"):
            candidates.append(folder / f"{path.name}.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"Config file {str(name)!r} not found (looked at {', '.join(str(c) for c in candidates)}). "
        f"Pass a path to a YAML file or the name of one in {CONF_DIR}."
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping at the top level, got {type(data).__name__}."
        )
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``dotted.key=value`` into the key path and a YAML-parsed value."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"Override {text!r} is not of the form dotted.key=value (for example recommend.k=20)."
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " or null"
    if origin in (list, Sequence, tuple):
        (arg, *_) = typing.get_args(hint) or (Any,)
        return f"list of {_type_name(arg)}"
    if origin in (dict, Mapping):
        _, arg = typing.get_args(hint) or (str, Any)
        return f"mapping of string to {_type_name(arg)}"
    if dataclasses.is_dataclass(hint):
        return "mapping (section)"
    return getattr(hint, "__name__", str(hint))


def _origin(origins: Mapping[str, str], key: str) -> str:
    """Return where ``key`` was set; a list item ``a.b[2]`` was set with its list ``a.b``."""
    return origins.get(key) or origins.get(key.split("[", 1)[0], MISSING_FROM)


def _convert(value: Any, hint: Any, key: str, origins: Mapping[str, str]) -> Any:
    """Check ``value`` against the type hint and return it in the dataclass's form."""

    def fail() -> ConfigError:
        return ConfigError(
            f"Config key '{key}' (set in {_origin(origins, key)}) expects "
            f"{_type_name(hint)}, got {value!r} ({type(value).__name__})."
        )

    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise fail()
        return _build(hint, value, key + ".", origins)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key, origins)
            except ConfigError as error:
                errors.append(error)
        raise fail()
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise fail()
        return value
    if origin in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            raise fail()
        (arg,) = typing.get_args(hint)[:1] or (Any,)
        return tuple(_convert(v, arg, f"{key}[{i}]", origins) for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise fail()
        _, arg = typing.get_args(hint)
        return {str(k): _convert(v, arg, f"{key}.{k}", origins) for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise fail()
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail()
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail()
        return float(value)
    if hint is str:
        # YAML turns 2024-01-01 into a date; a string key accepts its text form.
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        if hasattr(value, "isoformat"):
            return value.isoformat()
        raise fail()
    raise TypeError(f"Unsupported type hint {hint!r} for config key '{key}'.")


def _build(cls: type, tree: Mapping[str, Any], prefix: str, origins: Mapping[str, str]):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(tree) - set(fields))
    if unknown:
        key = prefix + unknown[0]
        raise ConfigError(
            f"Unknown config key '{key}' (set in {_origin(origins, key)}). "
            f"Known keys under '{prefix.rstrip('.') or '<top>'}': {', '.join(sorted(fields))}."
        )
    values = {}
    for name, field in fields.items():
        key = prefix + name
        if name in tree:
            values[name] = _convert(tree[name], hints[name], key, origins)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            if dataclasses.is_dataclass(hints[name]):
                values[name] = _build(hints[name], {}, key + ".", origins)
            else:
                raise ConfigError(
                    f"Missing required config key '{key}' ({_type_name(hints[name])}). "
                    f"Set it in {BASE_FILE}, an overlay, or with --set {key}=VALUE."
                )
    try:
        return cls(**values)
    except ValueError as error:
        message = str(error)
        # A message that names its keys in full ("data.path is ...") needs no prefix.
        if not (prefix and message.startswith(prefix)):
            message = f"{prefix.rstrip('.') or 'config'}: {message}"
        raise ConfigError(message) from error


def load_config(
    files: Sequence[str | os.PathLike] = (),
    overrides: Sequence[str] = (),
    base: str | os.PathLike | None = BASE_FILE,
) -> settings.Config:
    """Load ``base.yaml``, merge ``files`` in order, apply ``overrides`` and validate.

    Args:
      files: Overlay files, as paths or names in ``conf/`` (``movielens`` or
        ``conf/movielens.yaml``).
      overrides: ``dotted.key=value`` strings; the value is parsed as YAML.
      base: The base file, loaded first; ``None`` skips it (tests use this).

    Returns:
      A frozen :class:`recsys_spark.settings.Config`.

    Raises:
      ConfigError: A file is missing or invalid, or a key is unknown, missing or of the
        wrong type.
    """
    tree: dict[str, Any] = {}
    origins: dict[str, str] = {}
    paths = ([resolve_config_path(base)] if base is not None else []) + [
        resolve_config_path(f) for f in files
    ]
    for path in paths:
        _merge(tree, _read_yaml(path), str(path), origins)
    for text in overrides:
        keys, value = parse_override(text)
        update: dict[str, Any] = {keys[-1]: value}
        for key in reversed(keys[:-1]):
            update = {key: update}
        _merge(tree, update, f"--set {text}", origins)
    config = _build(settings.Config, tree, "", origins)
    return dataclasses.replace(config, sources=tuple(str(p) for p in paths) + tuple(overrides))


def to_dict(config: Any) -> dict[str, Any]:
    """Return the config as plain nested dicts (for run summaries and MLflow)."""
    return dataclasses.asdict(config)


def get_value(config: Any, dotted: str) -> Any:
    """Return the value at ``dotted.key``, raising ConfigError for an unknown key."""
    value = config
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(value) or not hasattr(value, part):
            raise ConfigError(f"Unknown config key '{dotted}'.")
        value = getattr(value, part)
    return value


def _main(argv: Sequence[str] | None = None) -> int:
    """Print config values, one a line: ``python -m recsys_spark.config KEY... [--config F]``.

    ``spark-submit.sh`` uses this to pass ``spark.master`` and the driver memory to
    spark-submit, because both must be known before the driver's JVM starts.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m recsys_spark.config")
    parser.add_argument("keys", nargs="+", metavar="KEY")
    parser.add_argument("--config", action="append", default=[])
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
        for key in args.keys:
            print(get_value(config, key))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
