"""Build the inputs of the query and candidate SavedModels from pandas rows.

These helpers use numpy and pandas only, so Spark executors can prepare a batch before
they hand it to TensorFlow. The returned dicts map each signature input name to a numpy
array with the dtype and shape that the signature declares.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from recsys_spark import columns as C

QUERY_STRING_INPUTS = (C.AGE_BUCKET, C.GENDER, C.REGION, C.LANGUAGE)
QUERY_INPUTS = (
    C.USER_IDX,
    *QUERY_STRING_INPUTS,
    C.HISTORY_VIDEO_IDX,
    C.HOUR_OF_DAY,
    C.DAY_OF_WEEK,
)
CANDIDATE_STRING_INPUTS = (C.CATEGORY, C.LANGUAGE, C.DURATION_BUCKET)
CANDIDATE_INPUTS = (
    C.VIDEO_IDX,
    *CANDIDATE_STRING_INPUTS,
    C.TAGS,
    C.TITLE_TOKENS,
    C.AGE_DAYS,
)


def pad_sequences(values: Sequence[Any], width: int, fill: Any, dtype: Any) -> np.ndarray:
    """Return a ``[len(values), width]`` array: each sequence truncated or padded with ``fill``.

    A missing sequence (None or NaN) becomes a row of ``fill``. Elements keep their order,
    so a most-recent-first history keeps its most recent ``width`` entries.
    """
    out = np.full((len(values), width), fill, dtype=dtype)
    for row, sequence in enumerate(values):
        if sequence is None or (np.isscalar(sequence) and pd.isna(sequence)):
            continue
        items = list(sequence)[:width]
        if items:
            out[row, : len(items)] = [fill if item is None else item for item in items]
    return out


def day_of_week(timestamps: pd.Series) -> np.ndarray:
    """Return the weekday of UTC timestamps as in the training rows: 0 = Monday ... 6 = Sunday.

    This is Spark's ``weekday`` function, which build_training_set uses, and pandas'
    ``dayofweek``.
    """
    return timestamps.dt.dayofweek.to_numpy().astype(np.int64)


def _utc_series(values: Any, length: int) -> pd.Series:
    series = pd.Series(pd.to_datetime(values, utc=True))
    if len(series) == 1 and length != 1:
        series = pd.Series(np.repeat(series.to_numpy(), length))
    return series


def _require(pdf: pd.DataFrame, names: Sequence[str], table: str) -> None:
    missing = [name for name in names if name not in pdf.columns]
    if missing:
        raise ValueError(
            f"{table} rows lack the columns {missing}; got {list(pdf.columns)}. Select them "
            "from the feature snapshot before building the model inputs."
        )


def _strings(series: pd.Series) -> np.ndarray:
    """Return an object array of str, with null values as "" (out of vocabulary)."""
    return series.astype(object).where(series.notna(), "").astype(str).to_numpy(dtype=object)


def query_inputs_from_pandas(
    pdf: pd.DataFrame,
    history_length: int,
    context_time: dt.datetime | str | None = None,
) -> dict[str, np.ndarray]:
    """Build the query SavedModel's inputs from rows shaped like ``features/users/<snapshot>``.

    Required columns: ``user_idx``, ``age_bucket``, ``gender``, ``region``, ``language``,
    ``history_video_idx`` (array of long, most recent first; null means no history).

    The context inputs come from the first source that exists: ``hour_of_day`` and
    ``day_of_week`` columns, then ``context_time``, then an ``as_of`` column (the
    snapshot time), then the current UTC time. Times are read as UTC.

    Args:
      pdf: The rows; the order of the output rows matches.
      history_length: H, the width of ``history_video_idx``; use metadata
        ``history_length``. Longer histories are truncated to their most recent H.
      context_time: The time of the request, used for every row.

    Returns:
      ``user_idx`` int64[B], the four demographics as object arrays of str[B] (null → ""),
      ``history_video_idx`` int64[B, H] 0-padded, ``hour_of_day`` and ``day_of_week``
      int64[B].
    """
    _require(pdf, (C.USER_IDX, *QUERY_STRING_INPUTS, C.HISTORY_VIDEO_IDX), "User feature")
    if history_length <= 0:
        raise ValueError(f"history_length must be a positive integer, got {history_length}.")
    inputs: dict[str, np.ndarray] = {
        C.USER_IDX: pdf[C.USER_IDX].fillna(C.OOV_INDEX).to_numpy(dtype=np.int64),
    }
    for name in QUERY_STRING_INPUTS:
        inputs[name] = _strings(pdf[name])
    inputs[C.HISTORY_VIDEO_IDX] = pad_sequences(
        pdf[C.HISTORY_VIDEO_IDX].tolist(), history_length, C.OOV_INDEX, np.int64
    )
    if C.HOUR_OF_DAY in pdf.columns and C.DAY_OF_WEEK in pdf.columns:
        inputs[C.HOUR_OF_DAY] = pdf[C.HOUR_OF_DAY].to_numpy(dtype=np.int64)
        inputs[C.DAY_OF_WEEK] = pdf[C.DAY_OF_WEEK].to_numpy(dtype=np.int64)
        return inputs
    if context_time is not None:
        times = _utc_series([context_time], len(pdf))
    elif C.AS_OF in pdf.columns:
        times = _utc_series(pdf[C.AS_OF], len(pdf))
    else:
        times = _utc_series([dt.datetime.now(dt.timezone.utc)], len(pdf))
    inputs[C.HOUR_OF_DAY] = times.dt.hour.to_numpy().astype(np.int64)
    inputs[C.DAY_OF_WEEK] = day_of_week(times)
    return inputs


def candidate_inputs_from_pandas(
    pdf: pd.DataFrame, tags_length: int, title_length: int
) -> dict[str, np.ndarray]:
    """Build the candidate SavedModel's inputs from rows shaped like ``features/videos/<snapshot>``.

    Required columns: ``video_idx``, ``category``, ``language``, ``duration_bucket``,
    ``tags`` and ``title_tokens`` (arrays of string), ``age_days`` (double).

    Args:
      pdf: The rows; the order of the output rows matches.
      tags_length: Width T of ``tags``; use metadata ``tags_length``.
      title_length: Width W of ``title_tokens``; use metadata ``title_length``.

    Returns:
      ``video_idx`` int64[B] and ``category``, ``language``, ``duration_bucket`` as object
      arrays of str[B]. ``tags`` is str[B, T] and ``title_tokens`` str[B, W], both
      ""-padded. ``age_days`` is float32[B], with null and NaN as 0.
    """
    _require(pdf, CANDIDATE_INPUTS, "Video feature")
    inputs: dict[str, np.ndarray] = {
        C.VIDEO_IDX: pdf[C.VIDEO_IDX].fillna(C.OOV_INDEX).to_numpy(dtype=np.int64),
    }
    for name in CANDIDATE_STRING_INPUTS:
        inputs[name] = _strings(pdf[name])
    inputs[C.TAGS] = pad_sequences(pdf[C.TAGS].tolist(), tags_length, "", object)
    inputs[C.TITLE_TOKENS] = pad_sequences(pdf[C.TITLE_TOKENS].tolist(), title_length, "", object)
    inputs[C.AGE_DAYS] = age_days_array(pdf[C.AGE_DAYS])
    return inputs


def age_days_array(ages: pd.Series) -> np.ndarray:
    """Return ages as float32, with null and NaN as 0 (age unknown: treated as new)."""
    values = pd.to_numeric(ages, errors="coerce").astype("float64")
    return values.fillna(0.0).to_numpy(dtype=np.float32)
