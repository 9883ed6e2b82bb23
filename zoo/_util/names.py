"""Names: normalising them, filtering them by fnmatch patterns, suggesting close matches.

The one implementation behind the registry's listings and lookups and the hub's pretrained
entries (``zoo list PATTERN``, ``unknown model 'mpl'; did you mean: mlp?``).
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable

__all__ = ["close_matches", "filter_names", "normalize_name", "unknown_message"]


def normalize_name(name: str) -> str:
    """Lower-case and map ``_`` to ``-`` so ``mobilenet_v3_small`` finds ``mobilenet-v3-small``."""
    return name.strip().lower().replace("_", "-")


def filter_names(
    names: Iterable[str],
    pattern: str | Iterable[str] | None,
    *,
    normalize: Callable[[str], str] = normalize_name,
) -> list[str]:
    """The names matching any fnmatch pattern, in their order (``None``: all of them).

    Args:
        names: names as listed; ``plugin/name`` ones also match a pattern on their bare name.
        pattern: one pattern or several (``"m*"``, ``["m*", "tiny*"]``).
        normalize: applied to each pattern before matching (default :func:`normalize_name`).
    """
    names = list(names)
    if pattern is None:
        return names
    patterns = [normalize(p) for p in ([pattern] if isinstance(pattern, str) else pattern)]
    return [
        n
        for n in names
        if any(
            fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(n.rpartition("/")[2], p)
            for p in patterns
        )
    ]


def close_matches(
    name: str, candidates: Iterable[str], n: int = 3, cutoff: float = 0.6
) -> list[str]:
    """Up to ``n`` candidates that look like ``name`` (difflib ratio >= ``cutoff``, best first)."""
    return difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=n, cutoff=cutoff)


def unknown_message(
    what: str, name: str, candidates: Iterable[str], *, otherwise: str, key: str | None = None
) -> str:
    """``unknown <what> 'x'; did you mean: a, b?``, or ``; <otherwise>`` with no close match.

    Args:
        what: the kind of name (``model``, ``pretrained entry``).
        name: the name as the user gave it (shown quoted).
        candidates: the known names.
        otherwise: the hint when nothing is close, e.g. ``see `zoo list models```.
        key: the normalised name to compare (default ``name``).
    """
    close = close_matches(name if key is None else key, candidates)
    hint = f"did you mean: {', '.join(close)}?" if close else otherwise
    return f"unknown {what} {name!r}; {hint}"
