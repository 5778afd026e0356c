"""Numerical anomaly detectors behind one contract (fit / score / threshold_ / predict). No I/O, no LLM.

Registry with lazy imports: nothing heavy (scikit-learn, torch) is imported until a detector class is requested,
and torch only for the torch detectors.

Time series (``kind="timeseries"``; input: DataFrame, rows = increasing time index, columns = numeric channels):
  ``zscore``, ``iforest``, ``pca`` (classical baselines), ``ae``, ``vae``, ``diffusion``, ``usad`` (torch) and
  ``auto`` (the triage default: a fixed, fast ensemble, see ``detectors.auto``).
Logs (``kind="log"``): ``new_template``, ``template_spike``, ``count_pca``, ``count_iforest`` take the event-count
  matrix (DataFrame windows × template ids); ``deeplog`` takes template-id sequences (a list or Series of lists).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from anomalist.detectors.base import Detector

_REGISTRY: dict[str, tuple[str, str, str]] = {
    # name: (kind, module, class)
    "zscore": ("timeseries", "anomalist.detectors.classical", "ZScoreDetector"),
    "iforest": ("timeseries", "anomalist.detectors.classical", "IForestDetector"),
    "pca": ("timeseries", "anomalist.detectors.classical", "PCADetector"),
    "ae": ("timeseries", "anomalist.detectors.deep", "AEDetector"),
    "vae": ("timeseries", "anomalist.detectors.deep", "VAEDetector"),
    "diffusion": ("timeseries", "anomalist.detectors.diffusion", "DiffusionDetector"),
    "usad": ("timeseries", "anomalist.detectors.deep", "USADDetector"),
    "auto": ("timeseries", "anomalist.detectors.auto", "AutoDetector"),
    "new_template": ("log", "anomalist.detectors.logs", "NewTemplateDetector"),
    "template_spike": ("log", "anomalist.detectors.logs", "TemplateSpikeDetector"),
    "count_pca": ("log", "anomalist.detectors.logs", "CountPCADetector"),
    "count_iforest": ("log", "anomalist.detectors.logs", "CountIForestDetector"),
    "deeplog": ("log", "anomalist.detectors.deeplog", "DeepLogDetector"),
}

CLASSICAL = ("zscore", "iforest", "pca")


def available(kind: Literal["timeseries", "log"] | None = None) -> list[str]:
    """Registered detector names, optionally of one kind, in registry order."""
    if kind not in (None, "timeseries", "log"):
        raise ValueError(f"kind must be 'timeseries', 'log' or None, got {kind!r}")
    return [name for name, (k, _, _) in _REGISTRY.items() if kind is None or k == kind]


def detector_class(name: str) -> type[Detector]:
    """The class registered under ``name`` (imports its module on first use)."""
    try:
        _, module, cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; available: {', '.join(_REGISTRY)}") from None
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def get_detector(name: str, **params: Any) -> Detector:
    """A new, unfitted detector ``name`` built with ``params`` (unknown parameters raise ``TypeError``)."""
    return detector_class(name)(**params)


def load_detector(path: Any) -> Detector:
    """Load any detector saved with ``Detector.save``."""
    from anomalist.detectors.base import Detector

    return Detector.load(path)


__all__ = ["CLASSICAL", "available", "detector_class", "get_detector", "load_detector"]
