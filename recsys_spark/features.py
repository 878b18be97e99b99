"""Point-in-time user and video features (``features/users/<snapshot>``, ``features/videos/...``).

A snapshot describes every user and video as of one time ``as_of``: each aggregate
reads only events with ``event_ts < as_of``, and the caller passes only the events of
the splits the snapshot may see (see :mod:`recsys_spark.splits`). Windowed counts cover
``[as_of - window, as_of)``.

Missing values: string features that feed a vocabulary are written as ``""`` when
unknown, which no vocabulary contains, so they map to the OOV index 0. Arrays are never
null. Numeric features are never null or NaN; the fill values are in each docstring.
Raw attributes copied from the catalog (``duration_s``, ``upload_ts``, ``creator_id``,
``misinformation``) stay null when the source has no value.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Optional, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark.columns import (
    AGE_BUCKET,
    AGE_DAYS,
    AS_OF,
    AVG_WATCH_FRACTION,
    BLOCKED_REGIONS,
    CATEGORY,
    CATEGORY_AFFINITY,
    CREATOR_ID,
    DAYS_SINCE_LAST_ACTIVITY,
    DURATION_BUCKET,
    DURATION_S,
    EVENT_TS,
    EVENT_TYPE,
    EVENTS_1D,
    EVENTS_7D,
    EVENTS_30D,
    EVENTS_ALL,
    GENDER,
    HISTORY_VIDEO_IDS,
    HISTORY_VIDEO_IDX,
    LANGUAGE,
    LIKE_RATE,
    LOG_EVENTS_7D,
    LOG_EVENTS_30D,
    LOG_VIEWS_7D,
    LOG_VIEWS_30D,
    LOG_VIEWS_ALL,
    MISINFORMATION,
    REGION,
    SIGNUP_TS,
    SPLIT,
    TAGS,
    TITLE,
    TITLE_TOKENS,
    UPLOAD_TS,
    USER_ID,
    USER_IDX,
    VIDEO_ID,
    VIDEO_IDX,
    VIEWS_1D,
    VIEWS_7D,
    VIEWS_30D,
    VIEWS_ALL,
    WATCH_THROUGH_RATE,
)
from recsys_spark.history import snapshot_history
from recsys_spark.positives import WATCH_FRACTION
from recsys_spark.settings import FeaturesConfig
from recsys_spark.splits import (
    Cutoffs,
    attach_as_of,
    snapshot_time,
    timestamp_literal,
    user_snapshot_times,
    visible_splits,
)

MICROS_PER_DAY = 86_400 * 1_000_000

# Events that count as a view of a video. A rating implies the user watched it, and
# MovieLens-like sources have no other events.
VIEW_EVENT_TYPES = ("watch", "rating")
# Impressions are the platform's choice, not the user's, so they are not user activity.
PASSIVE_EVENT_TYPES = ("impression",)
UNKNOWN_DURATION_BUCKET = "unknown"
# Lower-case runs of letters and digits in any script; everything else separates tokens.
TOKEN_SEPARATOR = r"[^\p{L}\p{N}]+"

USER_FEATURE_COLUMNS = (
    USER_ID,
    USER_IDX,
    AGE_BUCKET,
    GENDER,
    REGION,
    LANGUAGE,
    EVENTS_1D,
    EVENTS_7D,
    EVENTS_30D,
    EVENTS_ALL,
    LOG_EVENTS_7D,
    LOG_EVENTS_30D,
    AVG_WATCH_FRACTION,
    CATEGORY_AFFINITY,
    HISTORY_VIDEO_IDS,
    HISTORY_VIDEO_IDX,
    DAYS_SINCE_LAST_ACTIVITY,
    AS_OF,
)
USER_DOUBLE_FEATURES = (
    LOG_EVENTS_7D,
    LOG_EVENTS_30D,
    AVG_WATCH_FRACTION,
    DAYS_SINCE_LAST_ACTIVITY,
)

VIDEO_FEATURE_COLUMNS = (
    VIDEO_ID,
    VIDEO_IDX,
    TITLE,
    CATEGORY,
    TAGS,
    TITLE_TOKENS,
    LANGUAGE,
    DURATION_S,
    DURATION_BUCKET,
    UPLOAD_TS,
    AGE_DAYS,
    CREATOR_ID,
    VIEWS_1D,
    VIEWS_7D,
    VIEWS_30D,
    VIEWS_ALL,
    LOG_VIEWS_7D,
    LOG_VIEWS_30D,
    LOG_VIEWS_ALL,
    WATCH_THROUGH_RATE,
    LIKE_RATE,
    BLOCKED_REGIONS,
    MISINFORMATION,
    AS_OF,
)
VIDEO_DOUBLE_FEATURES = (
    DURATION_S,
    AGE_DAYS,
    LOG_VIEWS_7D,
    LOG_VIEWS_30D,
    LOG_VIEWS_ALL,
    WATCH_THROUGH_RATE,
    LIKE_RATE,
)


def title_tokens(title: Column, stop_words: Sequence[str] = ()) -> Column:
    """Return the lower-case word tokens of ``title`` (array<string>, empty for null).

    Tokens are maximal runs of Unicode letters and digits, so "Toy Story (1995)" gives
    ``["toy", "story", "1995"]``. Tokens in ``stop_words`` are dropped.
    """
    tokens = F.split(F.lower(F.coalesce(title, F.lit(""))), TOKEN_SEPARATOR)
    if stop_words:
        words = sorted(set(stop_words))
        return F.filter(tokens, lambda token: (token != "") & ~token.isin(words))
    return F.filter(tokens, lambda token: token != "")


def duration_bucket(duration: Column, edges: Sequence[float]) -> Column:
    """Return the duration bucket label: ``"0-60s"``, ..., ``"3600s+"`` or ``"unknown"``.

    The first bucket covers ``[0, edges[0])`` seconds, the next ``[edges[0], edges[1])``
    and so on, and the last bucket is open-ended. Null, zero and negative durations are
    ``"unknown"``.
    """
    label = F.when(duration.isNull() | (duration <= 0), F.lit(UNKNOWN_DURATION_BUCKET))
    lower = 0.0
    for edge in edges:
        label = label.when(duration < edge, F.lit(f"{lower:g}-{edge:g}s"))
        lower = edge
    return label.otherwise(F.lit(f"{lower:g}s+"))


def duration_bucket_labels(edges: Sequence[float]) -> list[str]:
    """Return every label :func:`duration_bucket` can produce, in duration order."""
    bounds = [0.0, *edges]
    labels = [f"{low:g}-{high:g}s" for low, high in itertools.pairwise(bounds)]
    return [*labels, f"{bounds[-1]:g}s+", UNKNOWN_DURATION_BUCKET]


def video_catalog(
    videos: DataFrame,
    video_ids: DataFrame,
    duration_edges: Sequence[float],
    stop_words: Sequence[str] = (),
) -> DataFrame:
    """Return the time-independent video attributes, one row per id-map video.

    Args:
      videos: The canonical videos table (``columns.VIDEOS_SCHEMA``).
      video_ids: The video id map: ``video_id``, ``video_idx``.
      duration_edges: ``features.duration_bucket_edges_s``.
      stop_words: Title tokens to drop.

    Returns:
      ``video_id``, ``video_idx``, ``title``, ``category``, ``tags``, ``title_tokens``,
      ``language``, ``duration_s``, ``duration_bucket``, ``upload_ts``, ``creator_id``,
      ``blocked_regions``, ``misinformation``. Unknown strings are ``""`` and unknown
      arrays are empty; tags are de-duplicated with their first-seen order kept.
    """
    empty_strings = F.array().cast("array<string>")
    tags = F.array_distinct(
        F.filter(F.coalesce(F.col(TAGS), empty_strings), lambda tag: tag.isNotNull() & (tag != ""))
    )
    return (
        video_ids.select(VIDEO_ID, VIDEO_IDX)
        .join(videos, on=VIDEO_ID, how="left")
        .select(
            VIDEO_ID,
            VIDEO_IDX,
            F.coalesce(F.col(TITLE), F.lit("")).alias(TITLE),
            F.coalesce(F.col(CATEGORY), F.lit("")).alias(CATEGORY),
            tags.alias(TAGS),
            title_tokens(F.col(TITLE), stop_words).alias(TITLE_TOKENS),
            F.coalesce(F.col(LANGUAGE), F.lit("")).alias(LANGUAGE),
            F.col(DURATION_S),
            duration_bucket(F.col(DURATION_S), duration_edges).alias(DURATION_BUCKET),
            F.col(UPLOAD_TS),
            F.col(CREATOR_ID),
            F.coalesce(F.col(BLOCKED_REGIONS), empty_strings).alias(BLOCKED_REGIONS),
            F.col(MISINFORMATION),
        )
    )


def _age_micros(as_of: Column) -> Column:
    return F.unix_micros(as_of) - F.unix_micros(F.col(EVENT_TS))


def _count_within(days: int, condition: Column, as_of: Column) -> Column:
    """Count rows matching ``condition`` in the ``days`` before ``as_of``."""
    recent = _age_micros(as_of) <= days * MICROS_PER_DAY
    return F.count(F.when(condition & recent, F.lit(1)))


def _smoothed(successes: Column, trials: Column, prior: Column, prior_weight: float) -> Column:
    """Bayesian average: (successes + w * prior) / (trials + w), defined for zero trials."""
    return (successes + F.lit(prior_weight) * prior) / (trials + F.lit(prior_weight))


def video_features(
    catalog: DataFrame,
    events: DataFrame,
    as_of: dt.datetime,
    rate_prior_views: float,
) -> DataFrame:
    """Return the video snapshot as of ``as_of``: one row per catalog video.

    Popularity: ``views_*`` count watch and rating events in the last 1, 7 and 30 days
    and in all visible time, and ``log_views_*`` are ``log(1 + views)``.
    ``watch_through_rate`` is the mean watch fraction (capped at 1) and ``like_rate``
    is likes per view (capped at 1). Both are Bayesian averages that add
    ``rate_prior_views`` pseudo-views at the global rate of the visible events. A video
    without views thus gets the global rate, which is 0 when there are no events.
    ``age_days`` is the time since upload, 0 for videos uploaded later than ``as_of`` or
    without ``upload_ts``.

    Args:
      catalog: From :func:`video_catalog`.
      events: The visible events: ``video_id``, ``event_ts``, ``event_type``,
        ``watch_fraction``. Events at or after ``as_of`` are ignored.
      as_of: The snapshot time.
      rate_prior_views: ``features.rate_prior_views``.

    Returns:
      The columns of ``VIDEO_FEATURE_COLUMNS``, in that order.
    """
    as_of_column = timestamp_literal(as_of)
    visible = events.filter(F.col(EVENT_TS) < as_of_column)
    is_view = F.col(EVENT_TYPE).isin(*VIEW_EVENT_TYPES)
    is_like = F.col(EVENT_TYPE) == "like"
    per_video = visible.groupBy(VIDEO_ID).agg(
        _count_within(1, is_view, as_of_column).alias(VIEWS_1D),
        _count_within(7, is_view, as_of_column).alias(VIEWS_7D),
        _count_within(30, is_view, as_of_column).alias(VIEWS_30D),
        F.count(F.when(is_view, F.lit(1))).alias(VIEWS_ALL),
        F.count(WATCH_FRACTION).alias("_watches"),
        F.coalesce(F.sum(WATCH_FRACTION), F.lit(0.0)).alias("_watch_sum"),
        F.count(F.when(is_like, F.lit(1))).alias("_likes"),
    )
    # One row with the global rates; a broadcast cross join adds them to every video.
    priors = visible.agg(
        F.coalesce(F.avg(WATCH_FRACTION), F.lit(0.0)).alias("_watch_prior"),
        F.coalesce(
            F.try_divide(
                F.count(F.when(is_like, F.lit(1))).cast("double"),
                F.count(F.when(is_view, F.lit(1))).cast("double"),
            ),
            F.lit(0.0),
        ).alias("_like_prior"),
    )

    counts = (VIEWS_1D, VIEWS_7D, VIEWS_30D, VIEWS_ALL, "_watches", "_likes")
    joined = catalog.join(per_video, on=VIDEO_ID, how="left").crossJoin(F.broadcast(priors))
    for name in counts:
        joined = joined.withColumn(name, F.coalesce(F.col(name), F.lit(0)).cast("long"))
    joined = joined.withColumn("_watch_sum", F.coalesce(F.col("_watch_sum"), F.lit(0.0)))

    watch_through = _smoothed(
        F.col("_watch_sum"), F.col("_watches"), F.col("_watch_prior"), rate_prior_views
    )
    like_rate = F.least(
        _smoothed(F.col("_likes"), F.col(VIEWS_ALL), F.col("_like_prior"), rate_prior_views),
        F.lit(1.0),
    )
    age_days = F.greatest(
        F.lit(0.0),
        (F.unix_micros(as_of_column) - F.unix_micros(F.col(UPLOAD_TS))) / float(MICROS_PER_DAY),
    )
    return joined.select(
        VIDEO_ID,
        VIDEO_IDX,
        TITLE,
        CATEGORY,
        TAGS,
        TITLE_TOKENS,
        LANGUAGE,
        DURATION_S,
        DURATION_BUCKET,
        UPLOAD_TS,
        F.coalesce(age_days, F.lit(0.0)).alias(AGE_DAYS),
        CREATOR_ID,
        VIEWS_1D,
        VIEWS_7D,
        VIEWS_30D,
        VIEWS_ALL,
        F.log1p(VIEWS_7D).alias(LOG_VIEWS_7D),
        F.log1p(VIEWS_30D).alias(LOG_VIEWS_30D),
        F.log1p(VIEWS_ALL).alias(LOG_VIEWS_ALL),
        watch_through.cast("double").alias(WATCH_THROUGH_RATE),
        like_rate.cast("double").alias(LIKE_RATE),
        BLOCKED_REGIONS,
        MISINFORMATION,
        as_of_column.alias(AS_OF),
    )


def category_affinity(first_positives: DataFrame) -> DataFrame:
    """Return each user's share of positive videos per category.

    Args:
      first_positives: The visible first positives: ``user_id``, ``category``. Rows
        with a null or empty category are left out of the shares.

    Returns:
      ``user_id``, ``category_affinity`` (map<string, double>, shares summing to 1, keys
      sorted) for users with at least one categorised positive.
    """
    known = first_positives.filter(F.col(CATEGORY).isNotNull() & (F.col(CATEGORY) != ""))
    per_category = known.groupBy(USER_ID, CATEGORY).agg(F.count(F.lit(1)).alias("_n"))
    total = F.sum("_n").over(Window.partitionBy(USER_ID))
    shares = per_category.withColumn("_share", F.col("_n") / total)
    entries = F.array_sort(F.collect_list(F.struct(CATEGORY, "_share")))
    return shares.groupBy(USER_ID).agg(F.map_from_entries(entries).alias(CATEGORY_AFFINITY))


def user_features(
    user_ids: DataFrame,
    users: DataFrame,
    events: DataFrame,
    first_positives: DataFrame,
    as_of: dt.datetime,
    period_start: dt.datetime,
    history_length: int,
    per_user_as_of: Optional[DataFrame] = None,
) -> DataFrame:
    """Return the user snapshot as of ``as_of``: one row per id-map user.

    Activity counts every event except impressions in the last 1, 7 and 30 days and in
    all visible time. ``avg_watch_fraction`` is the mean watch fraction of the user's
    watches, or the global mean over visible watches for a user without any (0 when
    there are none at all). ``days_since_last_activity`` is measured from the last
    active event; a user without one is measured from ``signup_ts`` when it lies in
    ``[period_start, as_of)``, else from ``period_start``.

    Args:
      user_ids: The user id map: ``user_id``, ``user_idx``.
      users: The canonical users table (``columns.USERS_SCHEMA``).
      events: The visible events: ``user_id``, ``event_ts``, ``event_type``,
        ``watch_fraction``. Events at or after the user's ``as_of`` are ignored.
      first_positives: The visible first positives: ``user_id``, ``video_id``,
        ``video_idx``, ``event_ts``, ``category``.
      as_of: The snapshot time.
      period_start: Start of the data (``t0``).
      history_length: ``features.history_length``.
      per_user_as_of: Optional ``user_id``, ``as_of`` replacing ``as_of`` per user.

    Returns:
      The columns of ``USER_FEATURE_COLUMNS``, in that order.

    Note:
      Demographics (age bucket, gender, region, language) come from the users table as
      it is now, because the canonical table keeps no history of them.
    """
    as_of_column = F.col(AS_OF)
    visible = attach_as_of(events, as_of, per_user_as_of).filter(F.col(EVENT_TS) < as_of_column)
    is_active = ~F.col(EVENT_TYPE).isin(*PASSIVE_EVENT_TYPES)
    per_user = visible.groupBy(USER_ID).agg(
        _count_within(1, is_active, as_of_column).alias(EVENTS_1D),
        _count_within(7, is_active, as_of_column).alias(EVENTS_7D),
        _count_within(30, is_active, as_of_column).alias(EVENTS_30D),
        F.count(F.when(is_active, F.lit(1))).alias(EVENTS_ALL),
        F.max(F.when(is_active, F.col(EVENT_TS))).alias("_last_active"),
        F.avg(WATCH_FRACTION).alias("_avg_watch"),
    )
    prior = visible.agg(F.coalesce(F.avg(WATCH_FRACTION), F.lit(0.0)).alias("_watch_prior"))

    positives = attach_as_of(first_positives, as_of, per_user_as_of).filter(
        F.col(EVENT_TS) < as_of_column
    )
    affinity = category_affinity(positives)
    history = snapshot_history(first_positives, as_of, history_length, per_user_as_of)

    attributes = users.select(USER_ID, AGE_BUCKET, GENDER, REGION, LANGUAGE, SIGNUP_TS)
    rows = attach_as_of(
        user_ids.select(USER_ID, USER_IDX).join(attributes, on=USER_ID, how="left"),
        as_of,
        per_user_as_of,
    )
    rows = (
        rows.join(per_user, on=USER_ID, how="left")
        .join(affinity, on=USER_ID, how="left")
        .join(history, on=USER_ID, how="left")
        .crossJoin(F.broadcast(prior))
    )

    start = timestamp_literal(period_start)
    signup = F.col(SIGNUP_TS)
    signup_in_period = F.when((signup >= start) & (signup < as_of_column), signup)
    reference = F.coalesce(F.col("_last_active"), signup_in_period, start)
    days_since = F.greatest(
        F.lit(0.0),
        (F.unix_micros(as_of_column) - F.unix_micros(reference)) / float(MICROS_PER_DAY),
    )
    counts = [
        F.coalesce(F.col(name), F.lit(0)).cast("long").alias(name)
        for name in (EVENTS_1D, EVENTS_7D, EVENTS_30D, EVENTS_ALL)
    ]
    return rows.select(
        USER_ID,
        USER_IDX,
        *[F.coalesce(F.col(name), F.lit("")).alias(name) for name in (AGE_BUCKET, GENDER)],
        *[F.coalesce(F.col(name), F.lit("")).alias(name) for name in (REGION, LANGUAGE)],
        *counts,
        F.log1p(F.coalesce(F.col(EVENTS_7D), F.lit(0))).alias(LOG_EVENTS_7D),
        F.log1p(F.coalesce(F.col(EVENTS_30D), F.lit(0))).alias(LOG_EVENTS_30D),
        F.coalesce(F.col("_avg_watch"), F.col("_watch_prior")).alias(AVG_WATCH_FRACTION),
        F.coalesce(F.col(CATEGORY_AFFINITY), F.create_map().cast("map<string,double>")).alias(
            CATEGORY_AFFINITY
        ),
        F.coalesce(F.col(HISTORY_VIDEO_IDS), F.array().cast("array<string>")).alias(
            HISTORY_VIDEO_IDS
        ),
        F.coalesce(F.col(HISTORY_VIDEO_IDX), F.array().cast("array<bigint>")).alias(
            HISTORY_VIDEO_IDX
        ),
        days_since.alias(DAYS_SINCE_LAST_ACTIVITY),
        as_of_column.alias(AS_OF),
    )


def build_snapshot(
    snapshot: str,
    events: DataFrame,
    firsts: DataFrame,
    catalog: DataFrame,
    user_ids: DataFrame,
    users: DataFrame,
    cutoffs: Cutoffs,
    config: FeaturesConfig,
    user_cutoffs: Optional[DataFrame] = None,
) -> tuple[DataFrame, DataFrame]:
    """Return the user and video features of one snapshot (``validation`` or ``test``).

    Only events of the splits before ``snapshot`` are read, and only those strictly
    before its ``as_of`` time (see :mod:`recsys_spark.splits` for what ``as_of`` is under
    each split method).

    Args:
      snapshot: ``validation`` or ``test``.
      events: Labeled, split interactions (``SplitEvents.events``).
      firsts: First positives with ``video_idx`` and ``category``.
      catalog: From :func:`video_catalog`.
      user_ids: The user id map.
      users: The canonical users table.
      cutoffs: The split's cut-offs.
      config: The ``features`` config section.
      user_cutoffs: Per-user starts of the leave-last-n split; None for other methods.

    Returns:
      ``(users, videos)``: DataFrames with ``USER_FEATURE_COLUMNS`` and
      ``VIDEO_FEATURE_COLUMNS``.
    """
    seen = visible_splits(snapshot)
    visible_events = events.filter(F.col(SPLIT).isin(*seen))
    visible_firsts = firsts.filter(F.col(SPLIT).isin(*seen))
    as_of = snapshot_time(cutoffs, snapshot)
    per_user = None if user_cutoffs is None else user_snapshot_times(user_cutoffs, snapshot)
    user_table = user_features(
        user_ids,
        users,
        visible_events,
        visible_firsts,
        as_of=as_of,
        period_start=cutoffs.t0,
        history_length=config.history_length,
        per_user_as_of=per_user,
    )
    video_table = video_features(catalog, visible_events, as_of, config.rate_prior_views)
    return user_table, video_table
