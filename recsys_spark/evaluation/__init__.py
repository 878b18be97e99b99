"""Offline evaluation: ranking metrics, beyond-accuracy metrics, stage comparisons, the
HTML report, benchmark splits and the peer recommenders of the public benchmark.

Modules: ``metrics`` (precision, recall, nDCG, MAP, MRR, hit rate on Spark),
``beyond_accuracy`` (coverage, novelty, popularity bias, diversity, exposure Gini),
``stages`` (retrieval, ranker and rule lists from the lake), ``report`` (report.html),
``splits`` (stratified and time splits), ``peers`` (popularity, ALS, cornac EASE and BPR),
``benchmark`` (the MovieLens protocol and its tables).
"""
