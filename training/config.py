"""Training configuration: typed sections with every default in one place, validated.

A run's configuration is layered: the defaults here (with the model's own differences from
its steps class, ``ModelSteps.config_defaults``), then ``--config FILE`` (a TOML file or the
name of a shipped one under ``training/configs/``; tables under ``[<model>]`` apply to that
model only), then command-line flags. TOML files only override: a key that no section knows,
a value of the wrong type or out of range is refused with a message naming the key.

Sections: ``[train]`` the loop, ``[data]`` the images, ``[optim]`` Adam and its LR schedule,
and per model: ``[loss]`` (GANs), ``[ema]`` and ``[diffusion]`` (the DDPM). ``[model]``,
``[discriminator]`` and ``[degradation]`` are constructor keyword arguments (a ``preset``
name from the model's description plus overrides, and ``core.defocus.DefocusConfig``): their
constructors check them.

The resolved configuration is a plain dict (``{section: {key: value}}`` plus ``model_name``):
it is written to ``RUN/config.toml`` and into checkpoints, and read back through `validate`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from training.settings import COMMON_SECTIONS

try:
    import tomllib
except ModuleNotFoundError:          # Python 3.10
    import tomli as tomllib
from training.steps import model_names, steps_class

__all__ = ["ConfigError", "CONFIG_DIR", "OPEN_TABLES", "defaults", "validate", "load_config",
           "read_toml", "resolve_config_path", "format_toml", "describe"]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
#: tables whose keys are constructor kwargs, checked by the constructor
OPEN_TABLES = ("model", "discriminator", "degradation")


class ConfigError(ValueError):
    """A configuration a user wrote is wrong; the message names the file or key."""


# ============================================================================ building

def _sections(model: str) -> tuple[dict[str, type], dict[str, dict[str, Any]]]:
    """(section classes, the model's default overrides) from its steps class."""
    try:
        cls = steps_class(model)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return {**COMMON_SECTIONS, **cls.config_sections}, cls.config_defaults


def defaults(model: str) -> dict[str, Any]:
    """The complete default configuration of a model (every key of every section)."""
    sections, over = _sections(model)
    cfg: dict[str, Any] = {"model_name": model}
    for name, cls in sections.items():
        cfg[name] = {**dataclasses.asdict(cls()), **over.get(name, {})}
    cfg["model"] = {"preset": "cpu", **over.get("model", {})}
    cfg["degradation"] = dict(over.get("degradation", {}))
    for name in OPEN_TABLES:                       # a model's own (GANs: [discriminator])
        if name in over and name not in cfg:
            cfg[name] = dict(over[name])
    return cfg


def _check_value(key: str, f: dataclasses.Field, value: Any) -> Any:
    """`value` converted to the field's type and checked against its range; ConfigError names the key."""
    kind = type(f.default)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be a whole number, got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        value = float(value)
    elif kind is str and not isinstance(value, str):
        raise ConfigError(f"{key} must be text, got {value!r}")
    meta = f.metadata
    if meta.get("min") is not None and value < meta["min"]:
        raise ConfigError(f"{key} must be at least {meta['min']}, got {value!r}")
    if meta.get("max") is not None and value > meta["max"]:
        raise ConfigError(f"{key} must be at most {meta['max']}, got {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{key} must be one of {', '.join(meta['choices'])}, got {value!r}")
    return value


def _merge(cfg: dict[str, Any], over: dict[str, Any], sections: dict[str, type], where: str,
           models: tuple[str, ...]) -> None:
    """Lay `over` onto `cfg`, key by key, refusing what no section knows."""
    for table, values in over.items():
        if table in models or table == "model_name":
            continue                                  # per-model tables: the caller's
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: unknown top-level config key {table!r} "
                              f"(settings live in tables such as [train])")
        if table in OPEN_TABLES and table in cfg:
            cfg[table].update(values)
            continue
        if table not in sections:
            known = ", ".join(sorted([*sections, *(t for t in OPEN_TABLES if t in cfg)]))
            raise ConfigError(f"{where}: unknown config table [{table}] (known: {known})")
        byname = {f.name: f for f in fields(sections[table])}
        for key, value in values.items():
            if key not in byname:
                raise ConfigError(f"{where}: unknown config key {key!r} in [{table}] "
                                  f"(known: {', '.join(sorted(byname))})")
            if isinstance(value, dict):
                raise ConfigError(f"{where}: config key {table}.{key} must be a value, not a table")
            cfg[table][key] = value


def validate(cfg: dict[str, Any], where: str = "configuration") -> dict[str, Any]:
    """A complete configuration (defaults filled in) with every value checked; ConfigError
    naming the key otherwise. Used on every configuration a run starts or resumes from."""
    model = cfg.get("model_name")
    sections, _ = _sections(str(model))
    out = defaults(str(model))
    _merge(out, {k: v for k, v in cfg.items() if k != "model_name"}, sections, where, ())
    for table, cls in sections.items():
        byname = {f.name: f for f in fields(cls)}
        for key, value in out[table].items():
            out[table][key] = _check_value(f"{table}.{key}", byname[key], value)
    return out


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None


def resolve_config_path(name: str) -> Path:
    """A path as given, else a shipped config by name (``tiny``, ``comi_gpu``...)."""
    p = Path(name)
    if p.is_file() or p.suffix == ".toml" or os.sep in name:
        return p
    shipped = CONFIG_DIR / f"{name}.toml"
    if shipped.is_file():
        return shipped
    known = ", ".join(sorted(q.stem for q in CONFIG_DIR.glob("*.toml")))
    raise ConfigError(f"config {name!r} is neither a file nor a shipped config ({known})")


def load_config(model: str, config: str | Path | None = None,
                overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The resolved configuration for `model`: defaults, then `config`, then `overrides`
    (command-line flags; None values are left alone)."""
    sections, _ = _sections(model)
    cfg = defaults(model)
    if config is not None:
        path = resolve_config_path(str(config))
        over = read_toml(path)
        name = over.get("model_name", model)
        if name != model:
            raise ConfigError(f"config file {path} is for model {name!r}, not {model!r}")
        models = model_names()
        _merge(cfg, over, sections, str(path), models)
        specific = over.get(model, {})
        if not isinstance(specific, dict):
            raise ConfigError(f"[{model}] in {path} must be a table")
        _merge(cfg, specific, sections, f"{path} [{model}]", models)
    for table, values in (overrides or {}).items():
        cfg.setdefault(table, {}).update({k: v for k, v in values.items() if v is not None})
    return validate(cfg)


# ============================================================================ writing

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def format_toml(cfg: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for our configs (scalars, lists, nested tables) -- no extra dependency."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in cfg.items()
             if not isinstance(v, dict) and v is not None]       # TOML has no null: omit
    for k, v in cfg.items():
        if isinstance(v, dict):
            name = f"{prefix}{k}"
            lines.append(f"\n[{name}]")
            lines.append(format_toml(v, f"{name}.").strip("\n"))
    return "\n".join(x for x in lines if x != "") + "\n"


def describe(model: str) -> str:
    """The default configuration of a model as commented TOML (``deblur-train --show-config``)."""
    sections, over = _sections(model)
    cfg = defaults(model)
    out = [f"# deblur-train --model {model}: every setting and its default. A --config file sets "
           "only what it changes."]
    for table, cls in sections.items():
        head = f"[{table}]"
        out.append(f"\n{head:<24} # {(cls.__doc__ or '').strip()}")
        for f in fields(cls):
            line = f"{f.name} = {_toml_value(cfg[table][f.name])}"
            out.append(f"{line:<24} # {f.metadata.get('help', '')}")
    for table in OPEN_TABLES:
        if table in cfg:
            head = f"[{table}]"
            what = ("core.defocus.DefocusConfig fields; empty = the simulator's defaults"
                    if table == "degradation" else
                    "network settings: a named preset, keys set here override it")
            out.append(f"\n{head:<24} # {what}")
            out += [f"{k} = {_toml_value(v)}" for k, v in cfg[table].items()]
    return "\n".join(out) + "\n"
