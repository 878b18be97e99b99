"""Vocabularies of the categorical features, written as one-value-per-line text files.

Line i of a vocabulary file (counting from 0) has index i + 1, and index 0 is
out-of-vocabulary, which is what ``tf.keras.layers.StringLookup(vocabulary=path,
num_oov_indices=1)`` produces. Values are ordered by count, highest first, ties by
value, so the same data always gives the same file.

Counts are taken over the catalog: videos for video attributes, users for user
attributes, each row counted once per value (a video with a tag twice counts once).
The catalog is not label data, so counting every row leaks nothing about the splits.
Null, empty values and values containing a line break are left out, because a line
break would split a file line. The features write unknown strings as ``""``, so they map
to index 0.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark.columns import (
    AGE_BUCKET,
    CATEGORY,
    COUNT,
    DURATION_BUCKET,
    GENDER,
    LANGUAGE,
    REGION,
    TAGS,
    TITLE_TOKENS,
)

VALUE = "value"
NAME = "_vocabulary"

# Vocabulary names (file names without .txt), as listed in docs/lake.md.
CATEGORY_VOCABULARY = "category"
TAG_VOCABULARY = "tag"
TITLE_TOKEN_VOCABULARY = "title_token"
LANGUAGE_VOCABULARY = "language"
REGION_VOCABULARY = "region"
AGE_BUCKET_VOCABULARY = "age_bucket"
GENDER_VOCABULARY = "gender"
DURATION_BUCKET_VOCABULARY = "duration_bucket"
VOCABULARIES = (
    CATEGORY_VOCABULARY,
    TAG_VOCABULARY,
    TITLE_TOKEN_VOCABULARY,
    LANGUAGE_VOCABULARY,
    REGION_VOCABULARY,
    AGE_BUCKET_VOCABULARY,
    GENDER_VOCABULARY,
    DURATION_BUCKET_VOCABULARY,
)


def vocabulary_values(catalog: DataFrame, users: DataFrame) -> dict[str, DataFrame]:
    """Return, per vocabulary name, a one-column DataFrame (``value``) of its occurrences.

    Args:
      catalog: Video attributes from :func:`recsys_spark.features.video_catalog`:
        ``category``, ``tags``, ``title_tokens``, ``language``, ``duration_bucket``.
      users: ``language``, ``region``, ``age_bucket``, ``gender``.
    """

    def column(df: DataFrame, name: str) -> DataFrame:
        return df.select(F.col(name).cast("string").alias(VALUE))

    def exploded(df: DataFrame, name: str) -> DataFrame:
        return df.select(F.explode(F.array_distinct(F.col(name))).alias(VALUE))

    return {
        CATEGORY_VOCABULARY: column(catalog, CATEGORY),
        TAG_VOCABULARY: exploded(catalog, TAGS),
        TITLE_TOKEN_VOCABULARY: exploded(catalog, TITLE_TOKENS),
        LANGUAGE_VOCABULARY: column(catalog, LANGUAGE).unionAll(column(users, LANGUAGE)),
        REGION_VOCABULARY: column(users, REGION),
        AGE_BUCKET_VOCABULARY: column(users, AGE_BUCKET),
        GENDER_VOCABULARY: column(users, GENDER),
        DURATION_BUCKET_VOCABULARY: column(catalog, DURATION_BUCKET),
    }


def count_values(values: DataFrame, min_count: int) -> DataFrame:
    """Count each valid value and keep those seen at least ``min_count`` times.

    Args:
      values: ``value`` (string).
      min_count: ``features.vocabulary_min_count``.

    Returns:
      ``value``, ``count`` (long), unordered.
    """
    value = F.col(VALUE)
    valid = value.isNotNull() & (value != "") & ~value.rlike("[\\r\\n]")
    return (
        values.filter(valid)
        .groupBy(VALUE)
        .agg(F.count(F.lit(1)).alias(COUNT))
        .filter(F.col(COUNT) >= min_count)
    )


def collect_vocabulary(counts: DataFrame) -> list[str]:
    """Return the values of ``counts`` by count, highest first, ties by value (an action)."""
    ordered = counts.orderBy(F.col(COUNT).desc(), F.col(VALUE).asc())
    return [row[VALUE] for row in ordered.select(VALUE).collect()]


def collect_vocabularies(values: dict[str, DataFrame], min_count: int) -> dict[str, list[str]]:
    """Count and order every vocabulary in one Spark job (an action).

    Args:
      values: From :func:`vocabulary_values`.
      min_count: ``features.vocabulary_min_count``.

    Returns:
      ``{name: values in index order}`` for every name in ``values``, empty lists included.
    """
    tagged = None
    for name, occurrences in values.items():
        counts = count_values(occurrences, min_count).withColumn(NAME, F.lit(name))
        tagged = counts if tagged is None else tagged.unionByName(counts)
    vocabularies: dict[str, list[str]] = {name: [] for name in values}
    if tagged is None:
        return vocabularies
    ordered = tagged.orderBy(NAME, F.col(COUNT).desc(), F.col(VALUE).asc())
    for row in ordered.select(NAME, VALUE).collect():
        vocabularies[row[NAME]].append(row[VALUE])
    return vocabularies


def vocabulary_text(values: list[str]) -> str:
    """Return the file content: one value per line, ending with a newline if non-empty."""
    return "".join(f"{value}\n" for value in values)
