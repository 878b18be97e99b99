"""Video titles and tags built from topic words, and the videos table, one block at a time.

Each video's text comes from its own random stream (seed, video index), so a re-upload
can rebuild its original's title and tags in any task and then edit them slightly.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from recsys_spark import columns as C
from recsys_spark.synthetic import vocabulary as vocab
from recsys_spark.synthetic.catalog import (
    MISINFORMATION_TRUE,
    MISINFORMATION_UNREVIEWED,
    Catalog,
)
from recsys_spark.synthetic.spec import SALT_VIDEO_TEXT, SyntheticSpec, random_stream
from recsys_spark.synthetic.users import format_ids
from recsys_spark.synthetic.world import World

GENERIC_TAG_PROBABILITY = 0.4


def _original_text(
    spec: SyntheticSpec, world: World, catalog: Catalog, video: int
) -> tuple[str, list[str]]:
    """Return the title and tags that ``video`` would have as an original upload."""
    rng = random_stream(spec.seed, SALT_VIDEO_TEXT, video)
    topic = int(catalog.topic[video])
    words = world.topic_words[topic]
    first, second, third = (words[i] for i in rng.choice(len(words), 3, replace=False))
    template = vocab.TITLE_TEMPLATES[rng.integers(len(vocab.TITLE_TEMPLATES))]
    year = dt.datetime.fromtimestamp(int(catalog.upload_s[video]), dt.timezone.utc).year
    title = template.format(a=first, b=second, c=third, n=int(rng.integers(3, 21)), year=year)
    title = title[0].upper() + title[1:]

    category = vocab.CATEGORIES[world.topic_category[topic]]
    tag_words = [words[i] for i in rng.choice(len(words), int(rng.integers(2, 5)), replace=False)]
    tags = [category, world.topic_names[topic], *tag_words]
    if rng.random() < GENERIC_TAG_PROBABILITY:
        tags.append(vocab.GENERIC_TAGS[rng.integers(len(vocab.GENERIC_TAGS))])
    return title, list(dict.fromkeys(tags))


def _reupload_text(title: str, tags: list[str], rng: np.random.Generator) -> tuple[str, list[str]]:
    """Edit an original's title and tags the way a re-uploader would, slightly."""
    if rng.random() < 0.6:
        title = title + vocab.REUPLOAD_SUFFIXES[rng.integers(len(vocab.REUPLOAD_SUFFIXES))]
    else:
        title = vocab.REUPLOAD_PREFIXES[rng.integers(len(vocab.REUPLOAD_PREFIXES))] + title
    if rng.random() < 0.3:
        title = title.lower()
    tags = list(tags)
    if len(tags) > 3 and rng.random() < 0.5:
        del tags[int(rng.integers(2, len(tags)))]
    if rng.random() < 0.5:
        tags.append(vocab.GENERIC_TAGS[rng.integers(len(vocab.GENERIC_TAGS))])
    return title, list(dict.fromkeys(tags))


def video_text(
    spec: SyntheticSpec, world: World, catalog: Catalog, video: int
) -> tuple[str, list[str]]:
    """Return the title and tags of ``video``; a re-upload edits its original's text."""
    original = int(catalog.original[video])
    if original < 0:
        return _original_text(spec, world, catalog, video)
    title, tags = _original_text(spec, world, catalog, original)
    return _reupload_text(title, tags, random_stream(spec.seed, SALT_VIDEO_TEXT, video))


def videos_frame(spec: SyntheticSpec, world: World, catalog: Catalog, block: int) -> pd.DataFrame:
    """Return the videos of ``block`` as a pandas frame in ``columns.VIDEOS_SCHEMA``."""
    first, end = spec.block_range(block, spec.videos)
    index = np.arange(first, max(first, end))
    texts = [video_text(spec, world, catalog, int(video)) for video in index]
    topic = catalog.topic[index]
    region_codes = [code for code, _, _, _ in vocab.REGIONS]
    blocked = [
        [code for bit, code in enumerate(region_codes) if mask >> bit & 1]
        for mask in catalog.blocked_mask[index].tolist()
    ]
    flag = catalog.misinformation[index]
    misinformation = pd.array(
        np.where(flag == MISINFORMATION_UNREVIEWED, None, flag == MISINFORMATION_TRUE),
        dtype="boolean",
    )
    return pd.DataFrame(
        {
            C.VIDEO_ID: format_ids("v", index, spec.videos),
            C.TITLE: [title for title, _ in texts],
            C.TAGS: [tags for _, tags in texts],
            C.CATEGORY: world.category_names()[topic],
            C.LANGUAGE: np.array(vocab.LANGUAGES, dtype=object)[catalog.language[index]],
            C.DURATION_S: catalog.duration_s[index],
            C.UPLOAD_TS: pd.to_datetime(catalog.upload_s[index], unit="s", utc=True),
            C.CREATOR_ID: format_ids("c", catalog.creator[index], catalog.num_creators),
            C.BLOCKED_REGIONS: blocked,
            C.MISINFORMATION: misinformation,
        }
    )


def video_truth_frame(
    spec: SyntheticSpec, world: World, catalog: Catalog, block: int
) -> pd.DataFrame:
    """Return the ground truth of the videos of ``block``.

    Columns: ``video_id``, ``topic``, ``popularity`` (relative chance of being shown,
    before freshness), ``original_video_id`` (the video a re-upload copies; null for
    originals).
    """
    first, end = spec.block_range(block, spec.videos)
    index = np.arange(first, max(first, end))
    original = catalog.original[index]
    original_ids = format_ids("v", np.maximum(original, 0), spec.videos)
    return pd.DataFrame(
        {
            C.VIDEO_ID: format_ids("v", index, spec.videos),
            "topic": np.array(world.topic_names, dtype=object)[catalog.topic[index]],
            "popularity": catalog.popularity[index],
            "original_video_id": np.where(original >= 0, original_ids, None),
        }
    )
