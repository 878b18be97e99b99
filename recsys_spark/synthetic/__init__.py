"""A synthetic video platform: users, videos and their events, generated in Spark.

The generative model:

- Topics (12 in the tiny tier to 64 in m and l, each with eight keywords) belong to 16
  categories, and their sizes follow a Zipf law. Titles and tags are built from the
  topic's keywords, so their tokens carry the topic.
- Creators have a language, a main topic, a Zipf-distributed share of the uploads and a
  log-normal popularity. A video's popularity is its creator's times its own log-normal
  factor, so views are heavy-tailed across videos and creators.
- Uploads: 35% before the period (the backlog), the rest at a steady rate during it.
  Interest decays with age since upload: ``0.15 + 0.85 * 2^(-age / half-life)``.
- Users have a region, a language (mostly the region's), an age bucket, a gender, a
  log-normal activity level and a signup time. Their taste is 1 to 4 favorite topics plus
  an even spread over all topics. Favorites lean toward one category and shift with the
  user's age bucket and region.
- Each impression takes its topic from the user's taste (70%) or from overall topic
  sizes. It then draws a video of that topic, in the user's language 85% of the time, by
  popularity times freshness, among videos uploaded before it and not blocked in the
  user's region. Watch, like, dislike and share are logistic in taste match, language
  match and quality; watch time is a Beta share of the duration.
- Re-uploads (3% of videos by default) copy a popular video's topic and text with small
  edits, under another creator and later. By default 6% of videos are blocked in 1 to 3
  regions, 2% are flagged as misinformation and 10% are unreviewed.

Every block of rows comes from its own random stream seeded with (seed, table, block), so
the tables do not depend on the Spark partitioning. :func:`ground_truth` returns the
latent tastes, topics and re-upload pairs for tests and evaluation.
"""

from recsys_spark.synthetic.generator import generate, ground_truth
from recsys_spark.synthetic.spec import SIZE_TIERS, SyntheticSpec

__all__ = ["SIZE_TIERS", "SyntheticSpec", "generate", "ground_truth"]
