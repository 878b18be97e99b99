# Databricks notebook source
# MAGIC %md
# MAGIC # 01 · Ingest and explore the data
# MAGIC
# MAGIC Runs the **ingest** stage, which validates the source and writes `raw/`,
# MAGIC `quarantine/` and `id_maps/` under the lake root. Then it looks at what was loaded:
# MAGIC table sizes, the popularity long tail, how skewed user activity is, why rows were
# MAGIC quarantined, and how many videos are region-blocked or flagged as misinformation.
# MAGIC
# MAGIC | widget | meaning | default |
# MAGIC |---|---|---|
# MAGIC | `config` | comma-separated overlays from `conf/`, e.g. `movielens` | empty (base only) |
# MAGIC | `lake_root` | lake root of all three notebooks (`dbfs:/...`, `s3a://...`) | `lake` |
# MAGIC | `data_size` | synthetic size tier: `tiny`, `s`, `m`, `l` | `tiny` |
# MAGIC | `overrides` | extra `dotted.key=value` settings separated by `;` | empty |
# MAGIC
# MAGIC Run the notebooks in order: 02 and 03 read the lake this one writes.

# COMMAND ----------

dbutils.widgets.text("config", "", "Config overlays (comma-separated)")
dbutils.widgets.text("lake_root", "lake", "Lake root")
dbutils.widgets.dropdown("data_size", "tiny", ["tiny", "s", "m", "l"], "Synthetic size tier")
dbutils.widgets.text("overrides", "", "Overrides (key=value; ...)")

# COMMAND ----------

from jobs import ingest
from recsys_spark import io
from recsys_spark import notebook as nb
from recsys_spark.cli import run_stage
from recsys_spark.columns import INTERACTIONS, USER_ID, VIDEO_ID, VIDEOS
from recsys_spark.runs import Run

config = nb.config_from_widgets(dbutils, nb.split_overrides(dbutils.widgets.get("overrides")))
run = Run(spark=spark, config=config)
print(f"run {run.run_id}: source {config.data.source}, lake {config.lake.root}")

# COMMAND ----------

# MAGIC %md ## Ingest
# MAGIC Every source row is either loaded or quarantined with one reason; the job fails if the
# MAGIC counts do not add up.

# COMMAND ----------

summary = run_stage("ingest", ingest.run, run)
display(nb.ingest_counts(spark, summary))

# COMMAND ----------

# MAGIC %md ## Quarantine reasons

# COMMAND ----------

display(nb.quarantine_reasons(spark, run.lake))

# COMMAND ----------

# MAGIC %md ## Popularity long tail
# MAGIC The share of all events that the most-watched 1%, 5%, ... of videos receive.

# COMMAND ----------

interactions = io.read_table(spark, run.lake.raw(INTERACTIONS), "raw interactions")
display(nb.long_tail(interactions, VIDEO_ID))
display(nb.events_per_value(interactions, VIDEO_ID))

# COMMAND ----------

# MAGIC %md ## Activity skew
# MAGIC The same view per user: how much of the traffic the most active users produce.

# COMMAND ----------

display(nb.long_tail(interactions, USER_ID))
display(nb.events_per_value(interactions, USER_ID))

# COMMAND ----------

# MAGIC %md ## Blocked and flagged videos
# MAGIC Videos blocked in at least one region, flagged as misinformation, or never reviewed
# MAGIC (`misinformation` null): the inputs of the region and misinformation rules.

# COMMAND ----------

videos = io.read_table(spark, run.lake.raw(VIDEOS), "raw videos")
display(nb.catalog_flags(videos))
