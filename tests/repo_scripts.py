"""The repository's scripts (``benchmarks/``, ``book/figures/``) as modules, for the tests that call them or
read what they declare."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def repo_script(path: str) -> ModuleType:
    """The script at ``path`` (relative to the repository root), imported once as the module named by its
    file's stem."""
    name = Path(path).stem
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # registered first: its dataclasses look their module up by name
        spec.loader.exec_module(module)
    return sys.modules[name]
