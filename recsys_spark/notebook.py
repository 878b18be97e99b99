"""Helpers for the Databricks source-format notebooks in ``notebooks/``.

The notebooks take their parameters from widgets and call into the package. On
Databricks, ``dbutils`` and ``spark`` are provided by the platform; elsewhere
:func:`run_notebook` executes a notebook file cell by cell with :class:`LocalDbutils`,
whose widgets return their defaults (or values passed in), and the session from
:func:`recsys_spark.session.get_spark`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from recsys_spark.config import load_config
from recsys_spark.settings import Config

logger = logging.getLogger(__name__)

COMMAND_SEPARATOR = "# COMMAND ----------"
HEADER = "# Databricks notebook source"


class LocalWidgets:
    """The subset of ``dbutils.widgets`` the notebooks use, backed by a dict."""

    def __init__(self, values: Optional[Mapping[str, str]] = None):
        self._values = dict(values or {})
        self._defined: dict[str, str] = {}

    def text(self, name: str, default_value: str, label: Optional[str] = None) -> None:
        self._defined[name] = self._values.get(name, default_value)

    def dropdown(
        self, name: str, default_value: str, choices: Sequence[str], label: Optional[str] = None
    ) -> None:
        value = self._values.get(name, default_value)
        if value not in choices:
            raise ValueError(f"Widget {name!r} got {value!r}; choose one of {list(choices)}.")
        self._defined[name] = value

    def is_defined(self, name: str) -> bool:
        return name in self._defined

    def get(self, name: str) -> str:
        if name not in self._defined:
            raise ValueError(f"Widget {name!r} is not defined; define it before reading it.")
        return self._defined[name]


class LocalDbutils:
    """Stands in for Databricks' ``dbutils`` object outside Databricks (widgets only)."""

    def __init__(self, values: Optional[Mapping[str, str]] = None):
        self.widgets = LocalWidgets(values)


def config_from_widgets(dbutils: Any, overrides: Sequence[str] = ()) -> Config:
    """Build the run config from the standard widgets (config files, lake root, size).

    The notebooks define ``config`` (comma-separated overlay names), ``lake_root`` and
    ``data_size`` widgets; anything else goes through ``overrides``.
    """
    files = [f.strip() for f in dbutils.widgets.get("config").split(",") if f.strip()]
    sets = [
        f"lake.root={dbutils.widgets.get('lake_root')}",
        f"data.size={dbutils.widgets.get('data_size')}",
        *overrides,
    ]
    return load_config(files, sets)


def split_cells(source: str) -> list[str]:
    """Split a Databricks source-format notebook into the code of each cell.

    ``# MAGIC`` lines (markdown and other magics) are dropped, because they are not Python.
    """
    if not source.startswith(HEADER):
        raise ValueError(f"Not a Databricks source notebook: the first line must be {HEADER!r}.")
    cells = []
    for chunk in source[len(HEADER) :].split(COMMAND_SEPARATOR):
        lines = [line for line in chunk.splitlines() if not re.match(r"^# MAGIC\b", line)]
        code = "\n".join(lines).strip()
        if code:
            cells.append(code)
    return cells


def run_notebook(path: str | Path, widget_values: Optional[Mapping[str, str]] = None) -> dict:
    """Execute a notebook top to bottom outside Databricks and return its namespace.

    Raises the first cell's exception, with the cell number added to the message.
    """
    from recsys_spark.session import get_spark

    path = Path(path)
    dbutils = LocalDbutils(widget_values)
    namespace: dict[str, Any] = {
        "__name__": "__notebook__",
        "dbutils": dbutils,
        "display": _display,
    }
    cells = split_cells(path.read_text(encoding="utf-8"))
    for number, code in enumerate(cells, start=1):
        logger.info("%s: cell %d of %d", path.name, number, len(cells))
        try:
            # On Databricks the session exists before the first cell; here it is built
            # from the widgets' config as soon as the parameter cell has defined them.
            if "spark" not in namespace and dbutils.widgets.is_defined("config"):
                namespace["spark"] = get_spark(config_from_widgets(dbutils))
            exec(compile(code, f"{path.name}[cell {number}]", "exec"), namespace)
        except Exception as error:
            raise RuntimeError(f"{path.name}: cell {number} failed: {error}") from error
    return namespace


def _display(value: Any, limit: int = 20) -> None:
    """Show a DataFrame or figure the way a notebook would, in plain text."""
    if hasattr(value, "limit") and hasattr(value, "toPandas"):
        logger.info("\n%s", value.limit(limit).toPandas().to_string())
    else:
        logger.info("%s", value)
