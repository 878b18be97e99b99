"""The retrieval loss on tiny batches, against values worked out by hand.

Every case uses unit vectors in two dimensions, so each logit is a cosine score that
can be read off the coordinates. A row's loss is -log softmax(logits)[positive]
= log(1 + sum over negatives of exp(logit_negative - logit_positive)).
"""

import math

import numpy as np
import pytest

from recsys_spark.models.data import check_sampling_probabilities
from recsys_spark.models.loss import RetrievalLoss
from recsys_spark.tf_env import tf

E = math.e


def _loss(layer, queries, candidates, ids, probability=None, row_embeddings=None, row_ids=None):
    value = layer(
        tf.constant(queries, tf.float32),
        tf.constant(candidates, tf.float32),
        tf.constant(ids, tf.int64),
        None if probability is None else tf.constant(probability, tf.float32),
        None if row_embeddings is None else tf.constant(row_embeddings, tf.float32),
        None if row_ids is None else tf.constant(row_ids, tf.int64),
    )
    return float(value.numpy())


# Rows 0 and 2 have the same positive video (id 7).
DUPLICATE_QUERIES = [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
DUPLICATE_CANDIDATES = [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
DUPLICATE_IDS = [7, 8, 7]


def test_accidental_hits_masked():
    # Logits: row 0 [1, 0, 1], row 1 [0, 1, 0], row 2 [1, 0, 1].
    # Column 2 repeats row 0's positive and column 0 repeats row 2's, so both are masked:
    # row 0: log(1 + e^-1); row 1: log(1 + 2 e^-1); row 2: log(1 + e^-1).
    layer = RetrievalLoss(temperature=1.0, remove_accidental_hits=True)
    expected = (2 * math.log(1 + 1 / E) + math.log(1 + 2 / E)) / 3
    loss = _loss(layer, DUPLICATE_QUERIES, DUPLICATE_CANDIDATES, DUPLICATE_IDS)
    assert loss == pytest.approx(expected, rel=1e-5)


def test_accidental_hits_kept_when_disabled():
    # Unmasked, row 0 sees its own video again at logit 1: log(1 + e^-1 + e^0) = log(2 + e^-1).
    layer = RetrievalLoss(temperature=1.0, remove_accidental_hits=False)
    expected = (2 * math.log(2 + 1 / E) + math.log(1 + 2 / E)) / 3
    loss = _loss(layer, DUPLICATE_QUERIES, DUPLICATE_CANDIDATES, DUPLICATE_IDS)
    assert loss == pytest.approx(expected, rel=1e-5)


def test_temperature_scales_logits():
    # Temperature 0.5 doubles the logits: row 0 [2, 0], row 1 [0, 2]; each log(1 + e^-2).
    layer = RetrievalLoss(temperature=0.5)
    loss = _loss(layer, [[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]], [1, 2])
    assert loss == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-5)


# Both queries score 1 against both candidates; video 1 is ten times as popular as video 2.
SAME_QUERIES = [[1.0, 0.0], [1.0, 0.0]]
SAME_CANDIDATES = [[1.0, 0.0], [1.0, 0.0]]
POPULARITY = [0.5, 0.05]


def test_logq_lowers_popular_candidates():
    # Corrected logits are 1 - log p: video 1 gets 1 - log 0.5, video 2 gets 1 - log 0.05,
    # which is log 10 higher. Row 0 (positive: popular video 1) loses log(1 + 10);
    # row 1 (positive: rare video 2) loses log(1 + 1/10).
    layer = RetrievalLoss(temperature=1.0)
    corrected = _loss(layer, SAME_QUERIES, SAME_CANDIDATES, [1, 2], probability=POPULARITY)
    assert corrected == pytest.approx((math.log(11) + math.log(1.1)) / 2, rel=1e-5)
    # Uncorrected, both rows lose log 2.
    uncorrected = _loss(layer, SAME_QUERIES, SAME_CANDIDATES, [1, 2])
    assert uncorrected == pytest.approx(math.log(2), rel=1e-5)


def test_logq_uses_only_probability_ratios():
    layer = RetrievalLoss(temperature=1.0)
    base = _loss(layer, SAME_QUERIES, SAME_CANDIDATES, [1, 2], probability=POPULARITY)
    scaled = _loss(layer, SAME_QUERIES, SAME_CANDIDATES, [1, 2], probability=[5e-8, 5e-9])
    assert scaled == pytest.approx(base, rel=1e-5)


def test_shared_and_row_negatives():
    # Positives: row 0 (1, 0) id 1, row 1 (0, 1) id 2; one shared extra (0.6, 0.8) id 3.
    # Row 0's negatives: (0, 1) id 4 and padding (id 0, masked even though it scores 1).
    # Row 1's negatives: (1, 0) id 5 and (0, -1) id 6.
    # Row 0 logits: positive 1; negatives 0 (row 1's positive), 0.6 (shared), 0 (id 4).
    # Row 1 logits: positive 1; negatives 0 (row 0's positive), 0.8, 0 (id 5), -1 (id 6).
    layer = RetrievalLoss(temperature=1.0)
    loss = _loss(
        layer,
        [[1.0, 0.0], [0.0, 1.0]],
        [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]],
        [1, 2, 3],
        row_embeddings=[[[0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, -1.0]]],
        row_ids=[[4, 0], [5, 6]],
    )
    row0 = math.log(1 + 2 / E + math.exp(-0.4))
    row1 = math.log(1 + 2 / E + math.exp(-0.2) + math.exp(-2))
    assert loss == pytest.approx((row0 + row1) / 2, rel=1e-5)


def test_row_negative_equal_to_positive_masked():
    # Both rows have video 1 at (1, 0) as their only row negative. For row 0 it is the
    # positive itself (masked): log(1 + e^-1). For row 1 (positive: video 2) it is a real
    # negative at logit 0 beside row 0's positive at 0: log(1 + 2 e^-1).
    layer = RetrievalLoss(temperature=1.0)
    loss = _loss(
        layer,
        [[1.0, 0.0], [0.0, 1.0]],
        [[1.0, 0.0], [0.0, 1.0]],
        [1, 2],
        row_embeddings=[[[1.0, 0.0]], [[1.0, 0.0]]],
        row_ids=[[1], [1]],
    )
    assert loss == pytest.approx((math.log(1 + 1 / E) + math.log(1 + 2 / E)) / 2, rel=1e-5)


def test_logq_with_row_negatives():
    # As in test_logq_lowers_popular_candidates, plus one row negative per row: row 0 has
    # video 9 at (1, 0), row 1 has padding. A row negative counts as drawn with probability
    # 1 / (B + R) = 1/2, the same as video 1, so its corrected logit equals video 1's.
    # Row 0: log(1 + 10 + 1) = log 12. Row 1: padding masked, log(1 + 1/10).
    layer = RetrievalLoss(temperature=1.0)
    loss = _loss(
        layer,
        SAME_QUERIES,
        SAME_CANDIDATES,
        [1, 2],
        probability=POPULARITY,
        row_embeddings=[[[1.0, 0.0]], [[1.0, 0.0]]],
        row_ids=[[9], [0]],
    )
    assert loss == pytest.approx((math.log(12) + math.log(1.1)) / 2, rel=1e-5)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_invalid_sampling_probability_names_video(bad):
    ids = np.array(["v1", "v2", "v3"], dtype=object)
    probabilities = np.array([0.2, bad, 0.3])
    with pytest.raises(ValueError, match=r"video_id 'v2'") as error:
        check_sampling_probabilities(ids, probabilities, "training/train/part-0.parquet")
    assert "1 of 3 rows" in str(error.value)


def test_valid_sampling_probabilities_pass():
    ids = np.array(["v1", "v2"], dtype=object)
    check_sampling_probabilities(ids, np.array([1.0, 1e-9]), "training/train")
