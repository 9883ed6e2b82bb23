"""Results of zoo's conformance checks (:mod:`zoo.testing`): one :class:`CheckResult` per check,
grouped per entry in an :class:`EntryReport`, several entries in a :class:`Report`.

A check is a function that returns normally (pass) or raises :class:`Failed` / :class:`Skipped`
with an "expected ..., found ..." detail; :meth:`EntryReport.run` records the outcome. Any
other exception is the entry's own code failing, and is recorded as a failure too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from zoo import api
from zoo.errors import UsageError
from zoo.registry import plugins
from zoo.registry.entries import Entry

__all__ = [
    "begin",
    "CheckResult",
    "EntryReport",
    "Failed",
    "judged_alone",
    "Note",
    "raised",
    "Report",
    "shape_of",
    "Skipped",
]

PASS, FAIL, SKIP = "pass", "fail", "skip"

_F = TypeVar("_F", bound=Callable[..., Any])


def judged_alone(fn: _F) -> _F:
    """Decorate a check so that ``ZOO_STRICT_PLUGINS=1`` does not fail it because of a plugin
    it was not asked about (:func:`zoo.registry.plugins.judged_alone`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with plugins.judged_alone():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class Failed(Exception):
    """Raised by a check that found something other than what the contract expects."""


class Skipped(Exception):
    """Raised by a check that cannot run here (e.g. a dataset's files are not on disk)."""


class Note(str):
    """Returned by a check that passed with something to say (what zoo will convert)."""


def raised(exc: BaseException) -> str:
    """``raised ValueError: <first line of the message>``, at most 300 characters."""
    lines = str(exc).strip().splitlines()
    text = f"raised {type(exc).__name__}" + (f": {lines[0]}" if lines else "")
    return text if len(text) <= 300 else text[:297] + "..."


def shape_of(t: Any) -> str:
    """``(4, 3)`` for a tensor, else the value's type name."""
    return str(tuple(t.shape)) if hasattr(t, "shape") else type(t).__name__


@dataclass
class CheckResult:
    """One check of one entry: ``status`` is ``pass``, ``fail`` or ``skip``."""

    kind: str
    name: str
    plugin: str
    check: str
    where: str = ""
    status: str = PASS
    detail: str = ""

    @property
    def label(self) -> str:
        return f"{self.check} [{self.where}]" if self.where else self.check

    @property
    def message(self) -> str:
        """``model 'x' (plugin p) forward [iris ...]: expected ..., found ...``."""
        text = f"{self.kind} {self.name!r} (plugin {self.plugin}) {self.label}"
        if self.status == SKIP:
            return f"{text}: skipped: {self.detail}"
        return f"{text}: {self.detail or self.status}"

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in ("check", "where", "status", "detail")}


@dataclass
class EntryReport:
    """Every check run on one entry (or on one plugin's loading, ``kind="plugin"``)."""

    kind: str
    name: str
    plugin: str
    summary: str = ""
    results: list[CheckResult] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``fail`` if any check failed, ``skip`` if nothing beyond the import passed (say, a
        dataset whose files are missing), else ``pass``."""
        if self.failures:
            return FAIL
        passed = any(r.status == PASS and r.check != "import" for r in self.results)
        return PASS if passed else SKIP

    @property
    def ok(self) -> bool:
        return self.status != FAIL

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == FAIL]

    @property
    def notes(self) -> list[CheckResult]:
        """Passed checks that said something (what zoo converts)."""
        return [r for r in self.results if r.status == PASS and isinstance(r.detail, Note)]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    def add(self, check: str, where: str, status: str, detail: str = "") -> None:
        self.results.append(
            CheckResult(self.kind, self.name, self.plugin, check, where, status, detail)
        )

    def skip(self, where: str, reason: str, *checks: str) -> None:
        """Record ``checks`` as skipped (an earlier check they depend on did not pass)."""
        for check in checks:
            self.add(check, where, SKIP, reason)

    def run(self, check: str, where: str, fn: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        """Run one check function; record pass, fail or skip; return ``(passed, its value)``."""
        try:
            value = fn(*args)
        except Skipped as exc:
            self.add(check, where, SKIP, str(exc))
        except Failed as exc:
            self.add(check, where, FAIL, str(exc))
        except Exception as exc:  # the entry's own code raised: that is the finding
            self.add(check, where, FAIL, f"expected no exception, found it {raised(exc)}")
        else:
            self.add(check, where, PASS, value if isinstance(value, Note) else "")
            return True, value
        return False, None

    def format(self) -> str:
        """One line per failure (or the status when nothing failed)."""
        if self.failures:
            return "\n".join(r.message for r in self.failures)
        return f"{self.kind} {self.name!r} (plugin {self.plugin}): {self.status}"

    def assert_ok(self) -> EntryReport:
        """Raise ``AssertionError`` listing every failed check; return the report otherwise."""
        if not self.ok:
            raise AssertionError(f"{len(self.failures)} check(s) failed:\n{self.format()}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "plugin": self.plugin,
            "summary": self.summary,
            "status": self.status,
            "passed": self.count(PASS),
            "failed": self.count(FAIL),
            "skipped": self.count(SKIP),
            "checks": [r.to_dict() for r in self.results],
        }


@dataclass
class Report:
    """The reports of several entries (a plugin, or everything a CLI call named)."""

    entries: list[EntryReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.entries)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for e in self.entries for r in e.failures]

    def __iter__(self) -> Iterator[EntryReport]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, name: str, kind: str | None = None) -> EntryReport:
        """The report of one entry by name (and kind)."""
        for e in self.entries:
            if e.name == name and kind in (None, e.kind):
                return e
        raise KeyError(name)

    def format(self) -> str:
        """One line per failure of any entry."""
        if not self.failures:
            return f"{len(self.entries)} entries: all checks passed or skipped"
        return "\n".join(r.message for r in self.failures)

    def assert_ok(self) -> Report:
        """Raise ``AssertionError`` listing every failed check of every entry."""
        if not self.ok:
            bad = sum(not e.ok for e in self.entries)
            raise AssertionError(
                f"{len(self.failures)} check(s) failed in {bad} of {len(self.entries)} "
                f"entries:\n{self.format()}"
            )
        return self

    def to_dicts(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.entries]


def begin(kind: str, entry: str | Entry) -> tuple[Entry, EntryReport, Callable[..., Any] | None]:
    """Resolve the entry, start its report and run the ``import`` check: ``(entry, report,
    target)``, the target ``None`` when it cannot be imported (the report says why)."""
    if isinstance(entry, str):
        entry = api.get_entry(kind, entry)
    elif entry.kind != kind:
        raise UsageError(f"{entry.name!r} is a {entry.kind}, not a {kind}")
    report = EntryReport(entry.kind, entry.name, entry.plugin, entry.summary)
    _, target = report.run("import", "", entry.load)
    return entry, report, target
