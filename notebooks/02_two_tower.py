# Databricks notebook source
# MAGIC %md
# MAGIC # 02 · Train the two-tower model and inspect its recommendations
# MAGIC
# MAGIC Runs the stages after ingest on the lake that notebook 01 wrote: features, the
# MAGIC training set, the TFRS two-tower model, the ScaNN index, candidate generation, the
# MAGIC rankers (optional) and the recommend stage with its post-processing rules. Then it
# MAGIC inspects one video's nearest neighbours in the exported embeddings, and one user's
# MAGIC final list beside the candidates that the rules removed or demoted, with the reasons.
# MAGIC
# MAGIC | widget | meaning | default |
# MAGIC |---|---|---|
# MAGIC | `config` | comma-separated overlays from `conf/` | empty |
# MAGIC | `lake_root` | lake root, the same as in notebook 01 | `lake` |
# MAGIC | `data_size` | synthetic size tier: `tiny`, `s`, `m`, `l` | `tiny` |
# MAGIC | `overrides` | extra `dotted.key=value` settings separated by `;` | empty |
# MAGIC | `train_ranker` | train and select a ranker (`false` scores by retrieval only) | `true` |
# MAGIC | `video_id` | video whose neighbours are shown | empty: the most-watched video |
# MAGIC | `user_id` | user whose list is shown | empty: the user with the most rule decisions |
# MAGIC | `neighbours` | neighbours shown for the video | `10` |

# COMMAND ----------

dbutils.widgets.text("config", "", "Config overlays (comma-separated)")
dbutils.widgets.text("lake_root", "lake", "Lake root")
dbutils.widgets.dropdown("data_size", "tiny", ["tiny", "s", "m", "l"], "Synthetic size tier")
dbutils.widgets.text("overrides", "", "Overrides (key=value; ...)")
dbutils.widgets.dropdown("train_ranker", "true", ["true", "false"], "Train a ranker")
dbutils.widgets.text("video_id", "", "Example video_id")
dbutils.widgets.text("user_id", "", "Example user_id")
dbutils.widgets.text("neighbours", "10", "Neighbours shown")

# COMMAND ----------

import importlib
import posixpath

from recsys_spark import io, output
from recsys_spark import notebook as nb
from recsys_spark.cli import run_stage
from recsys_spark.columns import INTERACTIONS
from recsys_spark.models import artifacts as two_tower
from recsys_spark.runs import Run

config = nb.config_from_widgets(dbutils, nb.split_overrides(dbutils.widgets.get("overrides")))
run = Run(spark=spark, config=config)
stages = [
    "build_features",
    "build_training_set",
    "train_two_tower",
    "build_index",
    "generate_candidates",
    *(["train_ranker"] if dbutils.widgets.get("train_ranker") == "true" else []),
    "recommend",
]
print(f"run {run.run_id}: stages {', '.join(stages)} on lake {config.lake.root}")

# COMMAND ----------

# MAGIC %md ## Run the stages
# MAGIC Each stage is the same function its spark-submit job runs; the run summary is written
# MAGIC to `runs/<run_id>/summary.json` after every stage.

# COMMAND ----------

summaries = {}
for name in stages:
    summaries[name] = run_stage(name, importlib.import_module(f"jobs.{name}").run, run)
print({name: summary["seconds"] for name, summary in summaries.items()})

# COMMAND ----------

# MAGIC %md ## Two-tower training
# MAGIC Validation metrics of the trained model (exact top-K recall over the whole corpus).

# COMMAND ----------

model_version = summaries["train_two_tower"]["model_version"]
metadata = io.read_json(
    spark, posixpath.join(two_tower.version_path(run.lake, model_version), two_tower.METADATA_FILE)
)
display(metadata["metrics"])

# COMMAND ----------

# MAGIC %md ## Nearest videos
# MAGIC Cosine similarity of the exported video embeddings (an exact scan), with titles and
# MAGIC categories: neighbours should mostly share the query video's category.

# COMMAND ----------

embeddings = io.read_table(
    spark,
    posixpath.join(two_tower.version_path(run.lake, model_version), two_tower.EMBEDDINGS_DIR),
    "two-tower embeddings",
)
video_features = io.read_table(
    spark, run.lake.features("videos", config.recommend.snapshot), "video features"
)
interactions = io.read_table(spark, run.lake.raw(INTERACTIONS), "raw interactions")
video_id = dbutils.widgets.get("video_id") or nb.most_watched_video(interactions)
neighbours = int(dbutils.widgets.get("neighbours"))
display(nb.describe_video(video_features, video_id))
display(nb.video_neighbours(embeddings, video_features, video_id, neighbours))

# COMMAND ----------

# MAGIC %md ## One user's recommendations and the rules' decisions
# MAGIC The final list (rank, score, candidate source), then every candidate a rule removed
# MAGIC or demoted for this user with the rule's reason (`recommendations_audit`).

# COMMAND ----------

recommendations = output.read_partition(spark, run.lake, output.RECOMMENDATIONS, run.date)
audit = output.read_partition(spark, run.lake, output.AUDIT, run.date)
user_id = dbutils.widgets.get("user_id") or nb.example_user(audit)
print(f"user {user_id}")
display(nb.user_list(recommendations, video_features, user_id))
display(nb.user_decisions(audit, video_features, user_id))

# COMMAND ----------

# MAGIC %md ## Rule effects over all users
# MAGIC Rows and users per action and reason; `short_list` rows are users with fewer than k
# MAGIC recommendations.

# COMMAND ----------

display(nb.audit_reasons(audit))
display(summaries["recommend"]["rules"])
