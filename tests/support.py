"""Test helpers shared by the suite (no fakes of real components: only a plain host)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class SimpleHost:
    """A MiddlewareHost built from plain dicts, for middleware unit tests."""

    base: Path = Path(".")
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, dict[str, str]] = field(default_factory=dict)
    others: dict[str, Any] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        return self.base

    def config_block(self, name: str) -> Mapping[str, Any] | None:
        return self.configs.get(name)

    def variables_of(self, kind: str) -> Mapping[str, str]:
        return self.variables.get(kind, {})

    def middleware(self, name: str) -> Any:
        return self.others[name]
