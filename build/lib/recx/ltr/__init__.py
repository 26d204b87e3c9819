"""Learning to rank: slates of documents per query, graded labels or simulated clicks, list-wise models.

Layout: :mod:`~recx.data.svmlight` (LETOR reader), :mod:`~recx.ltr.data` (ragged splits, padding, normalisation),
:mod:`~recx.ltr.sources` (MSLR-WEB10K, generated data), :mod:`~recx.ltr.clicks` (PBM/UBM/cascade simulators),
:mod:`~recx.ltr.losses` (Plackett-Luce, ListNet, LambdaRank), :mod:`~recx.ltr.models` (the rankers),
:mod:`~recx.ltr.datamodule` and :mod:`~recx.ltr.module` (Lightning glue).
"""
