"""zoo's diagnostics: the ``zoo`` logger and its one-line stderr handler.

Every module logs to a child of the ``zoo`` logger named after itself (``zoo.registry.plugins``,
``zoo.hub.index``, ...) through :func:`get_logger`. What reaches stderr is one line per record,
with no source line and no traceback::

    zoo: warning: ZOO_PLUGINS names no installed plugin: acme
    zoo: plugin acme register_models -> acme-net          (a debug line, ZOO_TRACE_PLUGINS=1)

Python API users: zoo does what ``huggingface_hub`` does (``huggingface_hub.utils.logging``),
not the ``NullHandler`` of ``requests``/``urllib3``. On import it gives the ``zoo`` logger
one :class:`OneLineHandler` (written to whatever ``sys.stderr`` is at the time of the record)
and the level ``WARNING``, so warnings reach stderr once with no configuration at all.
Propagation stays on, so records also reach the application's own handlers (and pytest's
``caplog``). To tune it, use the standard logging API:

- quieter: ``logging.getLogger("zoo").setLevel(logging.ERROR)``;
- more (plugin loading traces and other debug records):
  ``logging.getLogger("zoo").setLevel(logging.DEBUG)``;
- only your own handlers (an application that configured logging and does not want zoo's
  line as well): ``logging.getLogger("zoo").handlers.clear()``.

The ``zoo`` command installs the same handler again (:func:`install_stderr_handler`), so its
warnings read ``zoo: warning: ...`` whatever a library user did to the logger.
"""

from __future__ import annotations

import logging
import sys

__all__ = [
    "LOGGER_NAME",
    "OneLineFormatter",
    "OneLineHandler",
    "get_logger",
    "install_stderr_handler",
    "warn_once",
]

LOGGER_NAME = "zoo"


class OneLineFormatter(logging.Formatter):
    """``zoo: <level>: <message>`` for warnings and errors, ``zoo: <message>`` below that.

    Whitespace (newlines included) collapses to single spaces and tracebacks are left out, so
    every record is exactly one line.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Args: record: the log record. Returns: its one line, without a newline."""
        message = " ".join(record.getMessage().split())
        if record.levelno >= logging.WARNING:
            return f"zoo: {record.levelname.lower()}: {message}"
        return f"zoo: {message}"


class OneLineHandler(logging.Handler):
    """Write each record as one line to the *current* ``sys.stderr``.

    Looking ``sys.stderr`` up at every record (as :data:`logging.lastResort` does) means a
    redirect made after import (pytest's ``capsys``, click's ``CliRunner``,
    ``contextlib.redirect_stderr``) still gets the line.
    """

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.setFormatter(OneLineFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record``'s line and flush; a closed or missing stderr is not an error."""
        stream = sys.stderr
        if stream is None:
            return
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def get_logger(name: str) -> logging.Logger:
    """The logger for one of zoo's modules.

    Args:
        name: the module's ``__name__`` (``zoo.registry.plugins``); a name outside ``zoo`` is
            put under it (``zoo.<name>``) so that zoo's handler and level apply.
    """
    if name != LOGGER_NAME and not name.startswith(LOGGER_NAME + "."):
        name = f"{LOGGER_NAME}.{name}"
    return logging.getLogger(name)


def install_stderr_handler() -> OneLineHandler:
    """Give the ``zoo`` logger its one-line stderr handler unless it already has one.

    Returns:
        The handler now attached (the existing one when there was one).
    """
    logger = logging.getLogger(LOGGER_NAME)
    for handler in logger.handlers:
        if isinstance(handler, OneLineHandler):
            return handler
    handler = OneLineHandler()
    logger.addHandler(handler)
    return handler


_SEEN: set[str] = set()


def warn_once(logger: logging.Logger, message: str, seen: set[str] | None = None) -> bool:
    """Log ``message`` at ``WARNING`` unless it was logged before (once per process).

    Args:
        logger: where to log it (a module's :func:`get_logger`).
        message: the warning, logged as is (no ``%`` formatting).
        seen: the messages already shown; default: one set shared by all of zoo.

    Returns:
        Whether the message was logged now.
    """
    seen = _SEEN if seen is None else seen
    if message in seen:
        return False
    seen.add(message)
    logger.warning("%s", message)
    return True


def _configure_library_logger() -> None:
    """The default for Python API users: one-line warnings on stderr (see the module doc)."""
    logger = logging.getLogger(LOGGER_NAME)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)
    install_stderr_handler()


_configure_library_logger()
