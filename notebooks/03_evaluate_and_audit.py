# Databricks notebook source
# MAGIC %md
# MAGIC # 03 · Evaluate the recommendations and audit the rules
# MAGIC
# MAGIC Runs **evaluate** on the newest recommendations in the lake (written by notebook 02):
# MAGIC accuracy per stage (two-tower, retrieval, ranked, final), beyond-accuracy metrics,
# MAGIC exposure and the rule effects, written to `evaluation/<run_id>/metrics.json` and
# MAGIC `report.html`. Then **validate_output** checks the partition against the rules the
# MAGIC run applied: no blocked, flagged, already-watched or duplicate video, and k rows per
# MAGIC user unless a short-list reason is recorded. Last, the audit table shows what each
# MAGIC rule removed or demoted.
# MAGIC
# MAGIC | widget | meaning | default |
# MAGIC |---|---|---|
# MAGIC | `config` | comma-separated overlays from `conf/` | empty |
# MAGIC | `lake_root` | lake root, the same as in notebooks 01 and 02 | `lake` |
# MAGIC | `data_size` | synthetic size tier: `tiny`, `s`, `m`, `l` | `tiny` |
# MAGIC | `overrides` | extra `dotted.key=value` settings separated by `;` | empty |
# MAGIC | `run_date` | recommendations partition to evaluate (YYYY-MM-DD) | empty: the newest |

# COMMAND ----------

dbutils.widgets.text("config", "", "Config overlays (comma-separated)")
dbutils.widgets.text("lake_root", "lake", "Lake root")
dbutils.widgets.dropdown("data_size", "tiny", ["tiny", "s", "m", "l"], "Synthetic size tier")
dbutils.widgets.text("overrides", "", "Overrides (key=value; ...)")
dbutils.widgets.text("run_date", "", "Run date (YYYY-MM-DD)")

# COMMAND ----------

from jobs import evaluate, validate_output
from recsys_spark import io, output
from recsys_spark import notebook as nb
from recsys_spark.cli import run_stage
from recsys_spark.runs import Run

run_date = dbutils.widgets.get("run_date")
overrides = nb.split_overrides(dbutils.widgets.get("overrides"))
if run_date:
    overrides.append(f"run_date={run_date}")
config = nb.config_from_widgets(dbutils, overrides)
run = Run(spark=spark, config=config)
print(f"run {run.run_id}: evaluating lake {config.lake.root}, run_date {run_date or 'newest'}")

# COMMAND ----------

# MAGIC %md ## Evaluate

# COMMAND ----------

summary = run_stage("evaluate", evaluate.run, run)
metrics = io.read_json(spark, summary["metrics"])
print(f"evaluated run {metrics['evaluated_run_id']} (run_date {metrics['run_date']})")
print(f"report: {summary['report']}")
display(nb.accuracy_table(metrics))

# COMMAND ----------

# MAGIC %md ## Plots
# MAGIC Recall@K per stage, the popularity of recommended videos against the catalog,
# MAGIC creator exposure (Lorenz curves), the ANN recall/cost trade-off and the rule effects.
# MAGIC A plot whose inputs the run did not produce says why instead.

# COMMAND ----------

for title, figure in nb.evaluation_figures(metrics).items():
    print(title)
    display(figure)

# COMMAND ----------

# MAGIC %md ## Beyond accuracy and exposure

# COMMAND ----------

display(metrics["beyond_accuracy"])
display(metrics["exposure"])

# COMMAND ----------

# MAGIC %md ## Audit the rules
# MAGIC validate_output raises a ValueError listing the first offenders when a list breaks
# MAGIC a rule. The audit table counts the candidates each rule removed or demoted.

# COMMAND ----------

checks = run_stage("validate_output", validate_output.run, run)
display(checks["checks"])
audit = output.read_partition(spark, run.lake, output.AUDIT, metrics["run_date"])
display(nb.audit_reasons(audit))
display(metrics["rules"])
