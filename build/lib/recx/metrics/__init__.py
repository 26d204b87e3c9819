"""Evaluation metrics shared by every family.

* :mod:`recx.metrics.topk`: full-ranking top-N accuracy metrics (Recall, NDCG, Precision, HitRate, MRR, MAP @k) as
  pure tensor functions of one hit matrix, plus the :class:`~recx.metrics.topk.TopKMetrics` accumulator;
* :mod:`recx.metrics.beyond`: beyond-accuracy metrics of the recommendation counts (coverage, popularity, Gini).

Nothing is imported here, so ``import recx.metrics.beyond`` stays free of torchmetrics.
"""
