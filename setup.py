"""Install recsys-spark: the library (recsys_spark) and its job entry points (jobs)."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

# One set known to install and import together on Python 3.11: the ScaNN 1.4.2 TF ops are
# built against TensorFlow 2.20, and TensorFlow Recommenders 0.7.7 needs Keras 2 (tf-keras).
INSTALL_REQUIRES = [
    "pyspark==4.3.*",
    "tensorflow==2.20.*",
    "tf-keras==2.20.*",
    "tensorflow-recommenders==0.7.7",
    "scann==1.4.2",
    "xgboost>=3,<4",
    "pyarrow>=15",
    "pandas>=2,<3",
    "numpy>=1.26,<3",
    "pyyaml>=6",
    # xgboost.spark's estimators import scikit-learn.
    "scikit-learn>=1.4",
    # The evaluate job's report.html inlines its plots.
    "matplotlib>=3.8",
]

EXTRAS_REQUIRE = {
    "dev": ["pytest>=8", "chispa>=0.10", "ruff>=0.6", "mlflow-skinny>=3,<4"],
    "bench": ["cornac>=2"],
    "mlflow": ["mlflow-skinny>=3,<4"],
}

setup(
    name="recsys-spark",
    version="0.1.0",
    description="A two-stage video recommender (TFRS two-tower, ScaNN, rankers) on Spark.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8")
    if (HERE / "README.md").exists()
    else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["recsys_spark", "recsys_spark.*", "jobs"]),
    python_requires=">=3.10,<3.13",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    # `recsys-spark <job> [--config FILE] [--set key=value]`, for Databricks wheel tasks.
    entry_points={"console_scripts": ["recsys-spark=jobs.run:main"]},
    license="Apache-2.0",
    classifiers=[
        "Programming Language :: Python :: 3.11",
        "Framework :: Apache Spark",
    ],
)
