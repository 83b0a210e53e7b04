"""Per-stage settings: read them from tags and cell metadata, merge them per stage, write them.

| tag | structured form (cell.metadata.nb2pipe) | meaning |
|---|---|---|
| `timeout:30m` | `"timeout": "30m"` | the stage is stopped after 30 minutes |
| `cell-timeout:5m` | `"cell-timeout": "5m"` | each cell is stopped after 5 minutes |
| `retries:2` | `"retries": 2` | a failed stage is tried again, up to twice |
| `memory:4GiB` | `"memory": "4GiB"` | the stage's kernel is stopped above 4 GiB (Kale: `limit:memory:4Gi`) |
| `allow-failure` | `"allow-failure": true` | a failure skips the dependants, the run succeeds |
| `kernel:NAME` | `"kernel": "NAME"` | the stage runs on that kernelspec |
| `env:NAME=VALUE`, `env:NAME` | `"env": {"NAME": "VALUE" or null}` | an environment variable set / passed through |
| `secret:NAME` | `"secret": ["NAME"]` | passed from the caller's environment or `.env`, never written |
| `track-env` | `"track-env": true` | the stage's environment is part of its staleness |

Durations are a number with `s`, `m` or `h` (a bare number is seconds). Sizes are bytes with
`KiB`/`MiB`/`GiB`/`TiB` (also `Ki`, `Mi`, `Gi`, `Ti`) or Kubernetes' decimal `K`/`M`/`G`/`T`
(also `KB`, `MB`, `GB`, `TB`). Settings may sit on any cell of a stage; the same setting with
two values is an error naming both cells. Pipeline-wide defaults live in the notebook's metadata
(`metadata.nb2pipe.defaults`, the structured form); nb2pipe.yaml holds them as `defaults:` and each
stage's own as `settings:`. `effective` gives what a stage runs with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from nb2pipe import model as m
from nb2pipe.errors import SpecError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smh]?)")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]i?B?)?")
_BINARY = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_DECIMAL = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KERNEL_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
_EXAMPLES = {
    m.S_TIMEOUT: "timeout:30m",
    m.S_CELL_TIMEOUT: "cell-timeout:5m",
    m.S_RETRIES: "retries:2",
    m.S_MEMORY: "memory:4GiB",
    m.S_ALLOW_FAILURE: "allow-failure",
    m.S_KERNEL: "kernel:python3",
    m.S_ENV: "env:NAME=VALUE or env:NAME",
    m.S_SECRET: "secret:API_TOKEN",
    m.S_TRACK_ENV: "track-env",
}


# --- values -----------------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """'30m' → 1800.0 seconds; a bare number is seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match or float(match[1]) <= 0:
        raise ValueError(f"'{text}' is not a duration; write a positive number with s, m or h, e.g. 30m")
    return float(match[1]) * _DURATION_UNITS[match[2]]


def parse_size(text: str) -> int:
    """'4GiB' → bytes; Ki/Mi/Gi/Ti (with or without B) are binary, K/M/G/T (or KB...) decimal."""
    match = _SIZE.fullmatch(text.strip())
    if not match or float(match[1]) <= 0:
        raise ValueError(f"'{text}' is not a size; write a positive number with MiB or GiB, e.g. 4GiB")
    unit = match[2] or ""
    factor = 1 if not unit else (_BINARY if "i" in unit else _DECIMAL)[unit[0]]
    return int(float(match[1]) * factor)


def format_duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def format_size(size: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if size % _BINARY[unit] == 0:
            return f"{size // _BINARY[unit]}{unit}iB"
        if size % _DECIMAL[unit] == 0:
            return f"{size // _DECIMAL[unit]}{unit}B"
    return str(size)


def _value(key: str, raw: Any, where: str) -> Any:
    """One setting's value from a tag's text or the structured form, checked."""
    try:
        return _converted(key, raw)
    except (ValueError, TypeError) as e:
        raise SpecError(f"{where}: {e}; e.g. '{_EXAMPLES[key]}'") from None


def _converted(key: str, raw: Any) -> Any:
    if key in (m.S_TIMEOUT, m.S_CELL_TIMEOUT):
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            raw = str(raw)
        return parse_duration(_text(raw, key))
    if key == m.S_MEMORY:
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)
        return parse_size(_text(raw, key))
    if key == m.S_RETRIES:
        if isinstance(raw, str) and raw.strip().isdigit():
            raw = int(raw)
        if type(raw) is not int or raw < 0:
            raise ValueError(f"retries must be a whole number, 0 or more, not {raw!r}")
        return raw
    if key in m.FLAG_SETTINGS:
        if not isinstance(raw, bool):
            raise ValueError(f"{key} is true or false, not {raw!r}")
        return raw
    if key == m.S_KERNEL:
        if not (isinstance(raw, str) and _KERNEL_NAME.fullmatch(raw)):
            raise ValueError(f"{raw!r} is not a kernel name (letters, digits, '.', '_', '-')")
        return raw
    if key == m.S_ENV:
        return _env(raw)
    return _secrets(raw)


def _text(raw: Any, key: str) -> str:
    if not isinstance(raw, str):
        raise TypeError(f"{key} must be a string, not {type(raw).__name__}")
    return raw


def _env_name(name: Any, what: str) -> str:
    if not (isinstance(name, str) and _ENV_NAME.fullmatch(name)):
        raise ValueError(f"{name!r} is not an environment variable name for {what} (letters, digits, '_')")
    return name


def _env(raw: Any) -> dict[str, str | None]:
    if not isinstance(raw, dict):
        raise TypeError("env must map variable names to values (or null to pass one through)")
    env: dict[str, str | None] = {}
    for name, value in raw.items():
        if isinstance(value, bool) or (value is not None and not isinstance(value, (str, int, float))):
            raise ValueError(f"env {name}: the value must be a string or null, not {value!r}")
        if value is not None and "\0" in str(value):
            raise ValueError(f"env {name}: the value holds a NUL character")
        env[_env_name(name, "env")] = None if value is None else str(value)
    return env


def _secrets(raw: Any) -> list[str]:
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list):
        raise TypeError("secret must be a name or a list of names")
    return [_env_name(name, "secret") for name in names]


# --- tags and the structured form -----------------------------------------------------------------


def setting_from_tag(tag: str, where: str) -> tuple[str, Any] | None:
    """(key, value) when `tag` is a settings tag, else None; a malformed one is an error."""
    key, sep, text = tag.partition(":")
    if key not in m.SETTING_KEYS:
        return None
    at = f"{where}: tag '{tag}'"
    if key in m.FLAG_SETTINGS:
        if sep:
            raise SpecError(f"{at}: '{key}' takes no value; write just '{key}'")
        return key, True
    if not sep or not text.strip():
        raise SpecError(f"{at} needs a value; e.g. '{_EXAMPLES[key]}'")
    text = text.strip()
    if key == m.S_ENV:
        name, has_value, value = text.partition("=")
        return key, _value(key, {name.strip(): value if has_value else None}, at)
    return key, _value(key, text, at)


def settings_from_structured(data: dict[str, Any], where: str) -> dict[str, Any]:
    """The settings keys of a structured mapping (cell.metadata.nb2pipe, nb2pipe.defaults), checked."""
    return {key: _value(key, data[key], f"{where} {key}") for key in m.SETTING_KEYS if key in data}


def kale_memory_limit(meta: dict[str, list[str]], where: str) -> tuple[dict[str, Any], str]:
    """Kale's `limit:memory:4Gi` as the `memory` setting, and where it is said (the cell and its tag)."""
    for value in meta.get("limit", []):
        resource, _, amount = value.partition(":")
        if resource == "memory":
            at = f"{where} tag 'limit:{value}'"
            return {m.S_MEMORY: _value(m.S_MEMORY, amount, at)}, at
    return {}, where


# --- merging ----------------------------------------------------------------------------------


@dataclass
class StageSettingsBuilder:
    """Collects a stage's settings from its cells; the same setting with two values is an error."""

    stage: str
    values: dict[str, tuple[Any, str]] = field(default_factory=dict)  # key → (value, where)
    env: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)

    def add(self, settings: dict[str, Any], where: str) -> None:
        for key, value in settings.items():
            if key == m.S_ENV:
                for name, env_value in value.items():
                    self._one(self.env, name, env_value, where, f"env:{name}")
            elif key == m.S_SECRET:
                self.secrets.extend(name for name in value if name not in self.secrets)
            else:
                self._one(self.values, key, value, where, key)

    def _one(self, seen: dict[str, Any], key: str, value: Any, where: str, what: str) -> None:
        if key in seen and seen[key][0] != value:
            earlier_value, earlier = seen[key]
            raise SpecError(
                f"stage '{self.stage}': {earlier} sets {what} to {_shown(key, earlier_value)} and {where} to "
                f"{_shown(key, value)}; keep one of them"
            )
        seen.setdefault(key, (value, where))

    def freeze(self) -> m.Settings:
        both = set(self.env) & set(self.secrets)
        if both:
            name = sorted(both)[0]
            raise SpecError(f"stage '{self.stage}': {name} is both env: and secret:; keep secret:{name} (a secret has no written value)")
        values = {key.replace("-", "_"): value for key, (value, _) in self.values.items()}
        return m.Settings(
            **values,
            env=tuple(sorted((name, value) for name, (value, _) in self.env.items())),
            secrets=tuple(sorted(self.secrets)),
        )


def _shown(key: str, value: Any) -> str:
    if key == m.S_MEMORY:
        return format_size(value)
    return repr(value) if not isinstance(value, float) else format_duration(value)


def settings_of(data: dict[str, Any], where: str, stage: str = "defaults") -> m.Settings:
    """Settings from one structured mapping (a stage's `settings:`, `defaults:`)."""
    builder = StageSettingsBuilder(stage)
    builder.add(settings_from_structured(data, where), where)
    unknown = sorted(set(data) - set(m.SETTING_KEYS))
    if unknown:
        raise SpecError(f"{where}: unknown setting '{unknown[0]}'; the settings are {', '.join(m.SETTING_KEYS)}")
    return builder.freeze()


def effective(pipeline: m.Pipeline, stage: m.Stage, kernel: str | None = None) -> m.Settings:
    """What `stage` runs with: its own settings over the pipeline's defaults; `kernel` (--kernel)
    stands in for stages and defaults that name none."""
    own, defaults = stage.settings, pipeline.defaults
    merged = {
        name: getattr(own, name) if getattr(own, name) is not None else getattr(defaults, name)
        for name in ("timeout", "cell_timeout", "retries", "memory", "allow_failure", "kernel", "track_env")
    }
    merged["kernel"] = merged["kernel"] or kernel
    env = dict(defaults.env) | dict(own.env)
    secrets = sorted(set(defaults.secrets) | set(own.secrets))
    for name in secrets:
        env.pop(name, None)
    return replace(m.Settings(**merged), env=tuple(sorted(env.items())), secrets=tuple(secrets))


def to_dict(settings: m.Settings) -> dict[str, Any]:
    """The structured form, for nb2pipe.yaml: only what is set, in the table's order."""
    data: dict[str, Any] = {}
    for key in m.SETTING_KEYS:
        value = _field(settings, key)
        if value is None or value == ():
            continue
        if key in (m.S_TIMEOUT, m.S_CELL_TIMEOUT):
            value = format_duration(value)
        elif key == m.S_MEMORY:
            value = format_size(value)
        elif key == m.S_ENV:
            value = dict(value)
        elif key == m.S_SECRET:
            value = list(value)
        data[key] = value
    return data


def _field(settings: m.Settings, key: str) -> Any:
    return settings.secrets if key == m.S_SECRET else getattr(settings, key.replace("-", "_"))
