"""The benchmark harness: plan the grid, run one combination, time it, report and compare.

``zoo.bench`` is both this package and the :func:`~zoo.bench.plan.bench` function of zoo's
public API. Importing a submodule (``zoo.bench.plan``) binds the package to the name
``zoo.bench``, so the package itself is callable: ``zoo.bench(...)`` runs the benchmark
whichever of the two the name holds.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

from zoo.bench.plan import bench
from zoo.bench.report import BenchResult

__all__ = ["BenchResult", "bench"]


class _BenchPackage(ModuleType):
    """This package, callable as :func:`zoo.bench.plan.bench`."""

    def __call__(self, *args: Any, **kwargs: Any) -> BenchResult:
        return bench(*args, **kwargs)


sys.modules[__name__].__class__ = _BenchPackage
