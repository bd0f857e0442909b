"""Option parsers shared by the command groups: --data-dir SUITE=PATH and --set KEY=VALUE."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import ConfigError


def parse_data_dirs(values: tuple[str, ...]) -> dict[str, str]:
    """--data-dir values: SUITE=PATH for one suite, or a bare PATH ("*") for all of them."""
    out = {}
    for value in values:
        name, sep, path = value.partition("=")
        # A path that exists is a path even when it contains "=".
        if sep and name and not Path(value).exists():
            out[name] = path
        else:
            out["*"] = value
    return out


def parse_weights(values: tuple[str, ...]) -> dict[str, float]:
    """--mix values: NAME=WEIGHT, the weight a number."""
    out = {}
    for value in values:
        name, sep, raw = value.partition("=")
        try:
            out[name.strip()] = float(raw)
        except ValueError:
            raise ConfigError(f"--mix takes SUITE=WEIGHT with a number, got {value!r}") from None
        if not sep or not name.strip():
            raise ConfigError(f"--mix takes SUITE=WEIGHT with a number, got {value!r}")
    return out


def parse_set(values: tuple[str, ...]) -> dict[str, Any]:
    """--set KEY=VALUE, VALUE read as JSON when it parses (numbers, true, lists), else as a string."""
    out: dict[str, Any] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set takes KEY=VALUE, got {value!r}")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out
