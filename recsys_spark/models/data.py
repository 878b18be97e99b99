"""The tf.data input pipeline: training rows streamed from Parquet, and the video corpus.

Training rows (``training/{train,validation}``, see docs/lake.md) are read with
``pyarrow.dataset`` one record batch at a time, so memory contains at most the shuffle
buffer, never the whole split. Each record batch becomes a dict of numpy arrays with
fixed widths (history, row negatives); a seeded buffer shuffles rows across record
batches, and ``tf.data.Dataset.from_generator`` turns the batches into a prefetched
dataset.

The corpus (``features/videos/<snapshot>``, at most a few hundred thousand rows) is held
in memory as tensors indexed by ``video_idx``, so that the model looks up a candidate's
features from the id alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from recsys_spark import columns as C
from recsys_spark.models.inputs import QUERY_STRING_INPUTS
from recsys_spark.tf_env import tf

logger = logging.getLogger(__name__)

# Extra batch keys computed from the training rows.
EVENT_DAY = "event_day"
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class RowFormat:
    """Widths and optional columns of the arrays built from training rows."""

    history_length: int
    # Width of negative_video_idx after filtering by type; 0 leaves the column out.
    row_negatives: int = 0
    row_negative_types: tuple[str, ...] = C.NEGATIVE_SOURCES
    # Read and check sampling_probability (training/train only guarantees it).
    sampling_probability: bool = True

    def parquet_columns(self) -> list[str]:
        names = [
            C.USER_IDX,
            *QUERY_STRING_INPUTS,
            C.HISTORY_VIDEO_IDX,
            C.HOUR_OF_DAY,
            C.DAY_OF_WEEK,
            C.VIDEO_ID,
            C.VIDEO_IDX,
            C.EVENT_TS,
        ]
        if self.sampling_probability:
            names.append(C.SAMPLING_PROBABILITY)
        if self.row_negatives:
            names += [C.NEGATIVE_VIDEO_IDX, C.NEGATIVE_TYPES]
        return names

    def output_signature(self) -> dict[str, tf.TensorSpec]:
        """Return the tf.data element spec of a batch (leading dimension: rows)."""
        spec = {
            C.USER_IDX: tf.TensorSpec([None], tf.int64),
            **{name: tf.TensorSpec([None], tf.string) for name in QUERY_STRING_INPUTS},
            C.HISTORY_VIDEO_IDX: tf.TensorSpec([None, self.history_length], tf.int64),
            C.HOUR_OF_DAY: tf.TensorSpec([None], tf.int64),
            C.DAY_OF_WEEK: tf.TensorSpec([None], tf.int64),
            C.VIDEO_IDX: tf.TensorSpec([None], tf.int64),
            EVENT_DAY: tf.TensorSpec([None], tf.float64),
        }
        if self.sampling_probability:
            spec[C.SAMPLING_PROBABILITY] = tf.TensorSpec([None], tf.float32)
        if self.row_negatives:
            spec[C.NEGATIVE_VIDEO_IDX] = tf.TensorSpec([None, self.row_negatives], tf.int64)
        return spec


def open_parquet(path: str) -> pads.Dataset:
    """Open a Parquet folder written by Spark (local path or a URI pyarrow understands).

    Spark's ``_SUCCESS`` and ``.crc`` files are skipped by pyarrow's default ignore
    prefixes. ``s3a://`` is read as ``s3://``, and ``dbfs:/`` as the ``/dbfs`` mount.

    Note:
      ``hdfs://`` needs libhdfs and a Hadoop CLASSPATH on the driver, as described for
      ``pyarrow.fs.HadoopFileSystem``.
    """
    if path.startswith("s3a://"):
        path = "s3://" + path[len("s3a://") :]
    elif path.startswith("dbfs:/"):
        path = "/dbfs/" + path[len("dbfs:/") :].lstrip("/")
    try:
        return pads.dataset(path, format="parquet")
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"Training rows not found at {path}. Run build_training_set first, or check lake.root."
        ) from error


def check_schema(dataset: pads.Dataset, names: Sequence[str], path: str) -> None:
    """Raise ValueError naming the columns of ``names`` that ``dataset`` lacks."""
    missing = [name for name in names if name not in dataset.schema.names]
    if missing:
        raise ValueError(
            f"Training rows at {path} lack the columns {missing} (docs/lake.md, "
            f"training/*); found {dataset.schema.names}. Rebuild them with build_training_set."
        )


def check_sampling_probabilities(
    video_ids: np.ndarray, probabilities: np.ndarray, where: str
) -> None:
    """Raise ValueError unless every probability is in (0, 1].

    The message names the first offending video and how many rows are invalid, because
    logQ correction subtracts log(p): p <= 0 gives an infinite logit, p > 1 or NaN is
    not a probability.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    invalid = ~((probabilities > 0.0) & (probabilities <= 1.0))
    if not invalid.any():
        return
    first = int(np.flatnonzero(invalid)[0])
    raise ValueError(
        f"Invalid sampling_probability {float(probabilities[first])} for video_id "
        f"{video_ids[first]!r} in {where}: {int(invalid.sum())} of {len(probabilities)} rows "
        "are not in (0, 1]. Rebuild features/item_frequencies and the training set, or set "
        "two_tower.logq_correction=false."
    )


def _flat_values(array: pa.Array, fill) -> np.ndarray:
    """Return the values of a list array's rows, null values replaced by ``fill``."""
    values = array.flatten()
    if values.null_count:
        values = pc.fill_null(values, fill)
    return values.to_numpy(zero_copy_only=False)


def pad_list_array(
    array: pa.Array,
    width: int,
    fill,
    dtype,
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """Return a ``[rows, width]`` array of each row's first ``width`` list values.

    Args:
      array: A list array; a null list is an empty row.
      width: Output width; longer rows are truncated, shorter ones padded with ``fill``.
      fill: Padding value, also used for null values inside a list.
      dtype: Output dtype.
      keep: Optional boolean mask over the flattened values; values where it is False
        are skipped before truncation (used to filter negatives by type).
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    rows = len(array)
    out = np.full((rows, width), fill, dtype=dtype)
    if rows == 0 or width == 0:
        return out
    lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy().astype(np.int64)
    values = _flat_values(array, fill)
    row_of_value = np.repeat(np.arange(rows), lengths)
    if keep is not None:
        row_of_value = row_of_value[keep]
        values = values[keep]
    # Position of each value inside its row: its index minus the index of the row's first.
    first_of_row = np.searchsorted(row_of_value, row_of_value, side="left")
    position = np.arange(len(row_of_value)) - first_of_row
    inside = position < width
    out[row_of_value[inside], position[inside]] = values[inside]
    return out


def _int_column(batch: pa.RecordBatch, name: str) -> np.ndarray:
    column = batch.column(name)
    if column.null_count:
        column = pc.fill_null(column, 0)
    return column.to_numpy(zero_copy_only=False).astype(np.int64)


def _string_column(batch: pa.RecordBatch, name: str) -> np.ndarray:
    column = batch.column(name)
    if column.null_count:
        column = pc.fill_null(column, "")
    return column.to_numpy(zero_copy_only=False).astype(object)


def event_days(timestamps: pa.Array) -> np.ndarray:
    """Return UTC timestamps as float64 days since the Unix epoch."""
    micros = timestamps.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return micros.to_numpy(zero_copy_only=False).astype(np.float64) / (SECONDS_PER_DAY * 1e6)


def record_batch_to_arrays(
    batch: pa.RecordBatch, row_format: RowFormat, where: str
) -> dict[str, np.ndarray]:
    """Convert one record batch of training rows into the arrays of a tf.data batch."""
    arrays: dict[str, np.ndarray] = {C.USER_IDX: _int_column(batch, C.USER_IDX)}
    for name in QUERY_STRING_INPUTS:
        arrays[name] = _string_column(batch, name)
    arrays[C.HISTORY_VIDEO_IDX] = pad_list_array(
        batch.column(C.HISTORY_VIDEO_IDX),
        row_format.history_length,
        C.OOV_INDEX,
        np.int64,
    )
    arrays[C.HOUR_OF_DAY] = _int_column(batch, C.HOUR_OF_DAY)
    arrays[C.DAY_OF_WEEK] = _int_column(batch, C.DAY_OF_WEEK)
    arrays[C.VIDEO_IDX] = _int_column(batch, C.VIDEO_IDX)
    arrays[EVENT_DAY] = event_days(batch.column(C.EVENT_TS))
    if row_format.sampling_probability:
        probability = pc.fill_null(batch.column(C.SAMPLING_PROBABILITY), float("nan"))
        probability = probability.to_numpy(zero_copy_only=False)
        check_sampling_probabilities(_string_column(batch, C.VIDEO_ID), probability, where)
        arrays[C.SAMPLING_PROBABILITY] = probability.astype(np.float32)
    if row_format.row_negatives:
        keep = None
        negatives = batch.column(C.NEGATIVE_VIDEO_IDX)
        if set(row_format.row_negative_types) != set(C.NEGATIVE_SOURCES):
            types = _flat_values(batch.column(C.NEGATIVE_TYPES), "")
            if len(types) != len(negatives.flatten()):
                raise ValueError(
                    f"{where}: negative_types has {len(types)} entries but negative_video_idx "
                    f"has {len(negatives.flatten())}; each negative needs one type. Rebuild "
                    "the training set with build_training_set."
                )
            keep = np.isin(types, list(row_format.row_negative_types))
        arrays[C.NEGATIVE_VIDEO_IDX] = pad_list_array(
            negatives,
            row_format.row_negatives,
            C.OOV_INDEX,
            np.int64,
            keep=keep,
        )
    return arrays


def iter_row_chunks(
    path: str,
    row_format: RowFormat,
    read_batch_rows: int,
    rng: np.random.Generator | None = None,
    max_rows: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Yield the training rows at ``path`` as dicts of arrays, one Parquet record batch each.

    Args:
      path: A ``training/<split>`` folder.
      row_format: Widths and optional columns.
      read_batch_rows: Maximum rows per record batch.
      rng: When given, the files' row groups are read in a random order drawn from it;
        otherwise in file order.
      max_rows: Stop after this many rows (in the order read).
    """
    dataset = open_parquet(path)
    names = row_format.parquet_columns()
    check_schema(dataset, names, path)
    fragments = [
        row_group
        for fragment in dataset.get_fragments()
        for row_group in fragment.split_by_row_group()
    ]
    if rng is not None:
        fragments = [fragments[i] for i in rng.permutation(len(fragments))]
    emitted = 0
    for fragment in fragments:
        for batch in fragment.to_batches(columns=names, batch_size=read_batch_rows):
            if max_rows is not None and emitted + batch.num_rows > max_rows:
                batch = batch.slice(0, max_rows - emitted)
            if batch.num_rows == 0:
                continue
            yield record_batch_to_arrays(batch, row_format, fragment.path)
            emitted += batch.num_rows
            if max_rows is not None and emitted >= max_rows:
                return


def _concatenate(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]}


def _take(arrays: dict[str, np.ndarray], rows) -> dict[str, np.ndarray]:
    return {name: values[rows] for name, values in arrays.items()}


def shuffled_batches(
    chunks: Iterator[dict[str, np.ndarray]],
    batch_size: int,
    buffer_rows: int,
    rng: np.random.Generator,
    drop_remainder: bool,
) -> Iterator[dict[str, np.ndarray]]:
    """Regroup row chunks into batches of ``batch_size`` rows, shuffled within a buffer.

    Rows accumulate until the buffer contains at least ``buffer_rows``. The buffer is then
    permuted and emitted as whole batches, and the leftover rows (fewer than a batch)
    stay for the next fill. Rows from different buffer fills never share a permutation,
    so ``buffer_rows`` should span several record batches.
    """
    pending: list[dict[str, np.ndarray]] = []
    pending_rows = 0

    def emit(final: bool) -> Iterator[dict[str, np.ndarray]]:
        nonlocal pending, pending_rows
        buffer = _concatenate(pending)
        order = rng.permutation(pending_rows)
        whole = pending_rows - pending_rows % batch_size
        for start in range(0, whole, batch_size):
            yield _take(buffer, order[start : start + batch_size])
        leftover = order[whole:]
        pending = [_take(buffer, leftover)] if len(leftover) else []
        pending_rows = len(leftover)
        if final and pending_rows and not drop_remainder:
            yield pending.pop()
            pending_rows = 0

    for chunk in chunks:
        pending.append(chunk)
        pending_rows += len(chunk[C.VIDEO_IDX])
        if pending_rows >= max(buffer_rows, batch_size):
            yield from emit(final=False)
    if pending_rows:
        yield from emit(final=True)


def sequential_batches(
    chunks: Iterator[dict[str, np.ndarray]], batch_size: int
) -> Iterator[dict[str, np.ndarray]]:
    """Regroup row chunks into batches of ``batch_size`` rows in order; the last may be short."""
    pending: list[dict[str, np.ndarray]] = []
    pending_rows = 0
    for chunk in chunks:
        pending.append(chunk)
        pending_rows += len(chunk[C.VIDEO_IDX])
        if pending_rows >= batch_size:
            buffer = _concatenate(pending)
            whole = pending_rows - pending_rows % batch_size
            for start in range(0, whole, batch_size):
                yield _take(buffer, slice(start, start + batch_size))
            pending = [_take(buffer, slice(whole, None))] if whole < pending_rows else []
            pending_rows -= whole
    if pending_rows:
        yield _concatenate(pending)


def training_dataset(
    path: str,
    row_format: RowFormat,
    batch_size: int,
    shuffle_buffer: int,
    read_batch_rows: int,
    seed: int,
    epoch: int,
) -> tf.data.Dataset:
    """Return one epoch of shuffled, full training batches streamed from ``path``.

    The row-group order and the buffer permutations come from ``(seed, epoch)``, so every
    epoch differs and a rerun with the same seed repeats them. The last partial batch is
    dropped, because in-batch negatives need full batches.
    """

    def generate():
        rng = np.random.default_rng([seed, epoch])
        chunks = iter_row_chunks(path, row_format, read_batch_rows, rng=rng)
        yield from shuffled_batches(chunks, batch_size, shuffle_buffer, rng, drop_remainder=True)

    dataset = tf.data.Dataset.from_generator(
        generate, output_signature=row_format.output_signature()
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(
    path: str,
    row_format: RowFormat,
    batch_size: int,
    read_batch_rows: int,
    max_rows: int | None,
) -> tf.data.Dataset:
    """Return the first ``max_rows`` rows at ``path`` in file order, in batches."""

    def generate():
        chunks = iter_row_chunks(path, row_format, read_batch_rows, max_rows=max_rows)
        yield from sequential_batches(chunks, batch_size)

    dataset = tf.data.Dataset.from_generator(
        generate, output_signature=row_format.output_signature()
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


@dataclass(frozen=True)
class SplitScan:
    """Facts about a training split gathered in one pass over a few of its columns."""

    rows: int
    max_event_day: float
    max_video_idx: int
    max_user_idx: int


def scan_split(path: str, read_batch_rows: int, check_probabilities: bool) -> SplitScan:
    """Count the rows of a split and, for training/train, check every sampling probability.

    Reads only the id, time and probability columns, so the check costs a fraction of
    an epoch and fails before any training step instead of in the middle of one.
    """
    dataset = open_parquet(path)
    names = [C.VIDEO_ID, C.VIDEO_IDX, C.USER_IDX, C.EVENT_TS]
    if check_probabilities:
        names.append(C.SAMPLING_PROBABILITY)
    check_schema(dataset, names, path)
    rows = 0
    max_day = -np.inf
    max_video = max_user = 0
    for fragment in dataset.get_fragments():
        for batch in fragment.to_batches(columns=names, batch_size=read_batch_rows):
            if batch.num_rows == 0:
                continue
            rows += batch.num_rows
            max_day = max(max_day, float(np.max(event_days(batch.column(C.EVENT_TS)))))
            max_video = max(max_video, int(np.max(_int_column(batch, C.VIDEO_IDX))))
            max_user = max(max_user, int(np.max(_int_column(batch, C.USER_IDX))))
            if check_probabilities:
                probability = pc.fill_null(batch.column(C.SAMPLING_PROBABILITY), float("nan"))
                check_sampling_probabilities(
                    _string_column(batch, C.VIDEO_ID),
                    probability.to_numpy(zero_copy_only=False),
                    fragment.path,
                )
    return SplitScan(rows, max_day, max_video, max_user)
