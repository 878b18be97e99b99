"""Users: demographics, signup, activity level and latent topic tastes, one block at a time.

A block of users is a pure function of (seed, block index), so the users table and the
event simulation, which runs in other tasks, see the same users without sharing data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_spark import columns as C
from recsys_spark.synthetic import vocabulary as vocab
from recsys_spark.synthetic.spec import DAY_S, SALT_USERS, SyntheticSpec, random_stream
from recsys_spark.synthetic.world import World

MAX_FAVORITE_TOPICS = 4
# Favorites after the first: this many extra draws with probability 0.35 each, and a logit
# bonus for topics of the first favorite's category (tastes cluster within categories).
EXTRA_FAVORITE_DRAWS = 3
EXTRA_FAVORITE_PROBABILITY = 0.35
SAME_CATEGORY_BONUS = 1.5
# Share of a user's taste spread evenly over all topics: Beta(2, 8), mean 0.2.
EXPLORE_BETA = (2.0, 8.0)
# Log-normal sigma of the activity level (expected events) of a user.
ACTIVITY_SIGMA = 1.0
# A share of users signed up before the period, spread over SIGNUP_HISTORY_DAYS before it.
# The others sign up during the first SIGNUP_WITHIN_PERIOD_SHARE of the period.
SIGNED_UP_BEFORE_SHARE = 0.8
SIGNUP_HISTORY_DAYS = 3 * 365
SIGNUP_WITHIN_PERIOD_SHARE = 0.9


@dataclass(frozen=True)
class UserBlock:
    """The users of one block, as index-aligned arrays.

    Attributes:
      index: Global user index (the number in the user id).
      region, language, age_bucket, gender, device: Indices into the lists of
        ``vocabulary``.
      signup_s: Signup time, whole seconds since the epoch.
      activity: Relative activity level (log-normal); expected events grow with it.
      favorite_topics: ``[n, MAX_FAVORITE_TOPICS]`` topic indices, -1 for unused slots.
      favorite_weights: Same shape; each row sums to 1 over the used slots.
      explore: Share of the taste spread evenly over all topics.
    """

    index: np.ndarray
    region: np.ndarray
    language: np.ndarray
    age_bucket: np.ndarray
    gender: np.ndarray
    device: np.ndarray
    signup_s: np.ndarray
    activity: np.ndarray
    favorite_topics: np.ndarray
    favorite_weights: np.ndarray
    explore: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def taste(self, rows: np.ndarray, topics: np.ndarray, num_topics: int) -> np.ndarray:
        """Return the taste share of ``topics[i]`` for the user at block row ``rows[i]``.

        The share is ``explore / num_topics`` plus ``(1 - explore)`` times the topic's
        favorite weight; summed over all topics it is 1 for every user.
        """
        matches = self.favorite_topics[rows] == topics[:, None]
        favorite_share = (self.favorite_weights[rows] * matches).sum(axis=1)
        explore = self.explore[rows]
        return explore / num_topics + (1.0 - explore) * favorite_share


def simulate_users(spec: SyntheticSpec, world: World, block: int) -> UserBlock:
    """Draw the users of ``block`` (rows ``block * block_size`` onward)."""
    first, end = spec.block_range(block, spec.users)
    count = max(0, end - first)
    rng = random_stream(spec.seed, SALT_USERS, block)

    region = rng.choice(len(world.region_share), count, p=world.region_share)
    language_draw = rng.random(count)[:, None]
    language = (language_draw > np.cumsum(world.region_language[region], axis=1)).sum(axis=1)
    language = np.minimum(language, len(vocab.LANGUAGES) - 1)
    age_bucket = rng.choice(len(vocab.AGE_BUCKETS), count, p=vocab.AGE_BUCKET_SHARES)
    gender = rng.choice(len(vocab.GENDERS), count, p=vocab.GENDER_SHARES)
    device = rng.choice(len(vocab.DEVICES), count, p=vocab.DEVICE_SHARES)

    span = spec.end_s - spec.start_s
    before = rng.random(count) < SIGNED_UP_BEFORE_SHARE
    signup_before = spec.start_s - rng.integers(1, SIGNUP_HISTORY_DAYS * DAY_S, count)
    signup_during = spec.start_s + (rng.random(count) * SIGNUP_WITHIN_PERIOD_SHARE * span)
    signup_s = np.where(before, signup_before, signup_during.astype(np.int64))

    favorite_topics, favorite_weights = _draw_tastes(rng, world, region, age_bucket)
    return UserBlock(
        index=np.arange(first, first + count, dtype=np.int64),
        region=region,
        language=language,
        age_bucket=age_bucket,
        gender=gender,
        device=device,
        signup_s=signup_s.astype(np.int64),
        activity=rng.lognormal(0.0, ACTIVITY_SIGMA, count),
        favorite_topics=favorite_topics,
        favorite_weights=favorite_weights,
        explore=rng.beta(*EXPLORE_BETA, count),
    )


def _draw_tastes(
    rng: np.random.Generator, world: World, region: np.ndarray, age_bucket: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Draw 1 to 4 favorite topics per user and their weights.

    Topics are drawn without replacement by Gumbel top-k over logits: the topic's overall
    share, plus shifts by the user's age bucket (per category) and region (per topic).
    Favorites after the first lean toward the first one's category.
    """
    count = len(region)
    num_topics = world.num_topics
    logits = (
        np.log(world.topic_share)[None, :]
        + world.age_category_affinity[age_bucket][:, world.topic_category]
        + world.region_topic_affinity[region]
    )
    first = np.argmax(logits + rng.gumbel(size=(count, num_topics)), axis=1)
    same_category = world.topic_category[None, :] == world.topic_category[first][:, None]
    later_logits = (
        logits + SAME_CATEGORY_BONUS * same_category + rng.gumbel(size=(count, num_topics))
    )
    later_logits[np.arange(count), first] = -np.inf
    later = np.argsort(-later_logits, axis=1, kind="stable")[:, : MAX_FAVORITE_TOPICS - 1]
    topics = np.concatenate([first[:, None], later], axis=1)

    num_favorites = 1 + rng.binomial(EXTRA_FAVORITE_DRAWS, EXTRA_FAVORITE_PROBABILITY, count)
    num_favorites = np.minimum(num_favorites, min(MAX_FAVORITE_TOPICS, num_topics))
    used = np.arange(MAX_FAVORITE_TOPICS)[None, :] < num_favorites[:, None]
    # The first favorite gets Gamma(2) mass and the others Gamma(1), so it usually leads.
    shape = np.array([2.0] + [1.0] * (MAX_FAVORITE_TOPICS - 1))
    weights = rng.gamma(shape[None, :], size=(count, MAX_FAVORITE_TOPICS)) * used
    weights /= weights.sum(axis=1, keepdims=True)
    return np.where(used, topics, -1), weights


def format_ids(prefix: str, indices: np.ndarray, total: int) -> np.ndarray:
    """Return ids such as ``u00042`` as an object array, zero-padded to fit ``total`` ids."""
    width = max(5, len(str(max(total - 1, 0))))
    return np.array([f"{prefix}{index:0{width}d}" for index in indices.tolist()], dtype=object)


def users_frame(spec: SyntheticSpec, world: World, block: int) -> pd.DataFrame:
    """Return the users of ``block`` as a pandas frame in ``columns.USERS_SCHEMA``."""
    users = simulate_users(spec, world, block)
    regions = np.array([code for code, _, _, _ in vocab.REGIONS], dtype=object)
    devices = np.array(vocab.DEVICES, dtype=object)
    return pd.DataFrame(
        {
            C.USER_ID: format_ids("u", users.index, spec.users),
            C.SIGNUP_TS: pd.to_datetime(users.signup_s, unit="s", utc=True),
            C.REGION: regions[users.region],
            C.LANGUAGE: np.array(vocab.LANGUAGES, dtype=object)[users.language],
            C.AGE_BUCKET: np.array(vocab.AGE_BUCKETS, dtype=object)[users.age_bucket],
            C.GENDER: np.array(vocab.GENDERS, dtype=object)[users.gender],
            C.EXTRAS: [{"device": device} for device in devices[users.device]],
        }
    )


def tastes_frame(spec: SyntheticSpec, world: World, block: int) -> pd.DataFrame:
    """Return one row per (user, favorite topic) of ``block``: the ground-truth tastes.

    Columns: ``user_id``, ``topic``, ``category``, ``weight`` (the topic's share of the
    user's taste, as in :meth:`UserBlock.taste`), ``rank`` (1 = largest weight).
    """
    users = simulate_users(spec, world, block)
    rows, slots = np.nonzero(users.favorite_topics >= 0)
    topics = users.favorite_topics[rows, slots]
    weight = users.taste(rows, topics, world.num_topics)
    frame = pd.DataFrame(
        {
            C.USER_ID: format_ids("u", users.index[rows], spec.users),
            "topic": np.array(world.topic_names, dtype=object)[topics],
            C.CATEGORY: world.category_names()[topics],
            "weight": weight,
        }
    )
    frame["rank"] = (
        frame.groupby(C.USER_ID)["weight"].rank(method="first", ascending=False).astype("int32")
    )
    return frame
