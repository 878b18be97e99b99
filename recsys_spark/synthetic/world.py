"""The small, fixed tables of a synthetic world: topics, regions and taste priors.

A :class:`World` is built on the driver from the seed alone and shipped to every task with
the task's function. It contains a few hundred numbers, so copying it costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys_spark.synthetic import vocabulary as vocab
from recsys_spark.synthetic.spec import SALT_WORLD, SyntheticSpec, random_stream

# Topic sizes follow a Zipf law with this exponent over a seeded random order of topics.
TOPIC_ZIPF_EXPONENT = 0.8
# Standard deviations of the taste shifts of each age bucket per category and of each
# region per topic, in logits of the topic choice.
AGE_CATEGORY_AFFINITY_SD = 0.6
REGION_TOPIC_AFFINITY_SD = 0.4


@dataclass(frozen=True)
class World:
    """Topics, regions and languages of one dataset, as index-aligned arrays.

    Attributes:
      topic_names: Topic name of each topic index.
      topic_words: The eight keywords of each topic.
      topic_category: Index into ``vocabulary.CATEGORIES`` of each topic.
      topic_share: Probability of each topic when a topic is drawn by overall popularity
        (a user's "trending" feed, a creator's main topic); sums to 1.
      age_category_affinity: Logit shift of each (age bucket, category) for favorite topics.
      region_topic_affinity: Logit shift of each (region, topic) for favorite topics.
      region_share: Share of users in each region of ``vocabulary.REGIONS``.
      region_language: Probability of each language of ``vocabulary.LANGUAGES`` for a user
        of each region; rows sum to 1.
      region_utc_offset_s: Offset from UTC of each region's local time, in seconds.
      language_share: Share of users speaking each language (the region mix applied).
    """

    topic_names: tuple[str, ...]
    topic_words: tuple[tuple[str, ...], ...]
    topic_category: np.ndarray
    topic_share: np.ndarray
    age_category_affinity: np.ndarray
    region_topic_affinity: np.ndarray
    region_share: np.ndarray
    region_language: np.ndarray
    region_utc_offset_s: np.ndarray
    language_share: np.ndarray

    @property
    def num_topics(self) -> int:
        return len(self.topic_names)

    def category_names(self) -> np.ndarray:
        """Return the category name of each topic, as an object array."""
        return np.array(vocab.CATEGORIES, dtype=object)[self.topic_category]


def build_world(spec: SyntheticSpec) -> World:
    """Build the world of ``spec``: its first ``spec.topics`` topics and seeded priors."""
    rng = random_stream(spec.seed, SALT_WORLD)
    topics = vocab.topics_in_round_robin()[: spec.topics]
    category_index = {name: i for i, name in enumerate(vocab.CATEGORIES)}

    rank = rng.permutation(len(topics))
    topic_share = 1.0 / (rank + 1.0) ** TOPIC_ZIPF_EXPONENT
    topic_share /= topic_share.sum()

    region_share = np.array([share for _, share, _, _ in vocab.REGIONS])
    region_share /= region_share.sum()
    language_index = {name: i for i, name in enumerate(vocab.LANGUAGES)}
    region_language = np.zeros((len(vocab.REGIONS), len(vocab.LANGUAGES)))
    for row, (_, _, _, languages) in enumerate(vocab.REGIONS):
        for language, share in languages.items():
            region_language[row, language_index[language]] = share
    region_language /= region_language.sum(axis=1, keepdims=True)

    return World(
        topic_names=tuple(name for _, name, _ in topics),
        topic_words=tuple(words for _, _, words in topics),
        topic_category=np.array([category_index[category] for category, _, _ in topics]),
        topic_share=topic_share,
        age_category_affinity=rng.normal(
            0.0,
            AGE_CATEGORY_AFFINITY_SD,
            (len(vocab.AGE_BUCKETS), len(vocab.CATEGORIES)),
        ),
        region_topic_affinity=rng.normal(
            0.0, REGION_TOPIC_AFFINITY_SD, (len(vocab.REGIONS), len(topics))
        ),
        region_share=region_share,
        region_language=region_language,
        region_utc_offset_s=np.array([offset * 3600.0 for _, _, offset, _ in vocab.REGIONS]),
        language_share=region_share @ region_language,
    )
