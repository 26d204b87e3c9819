"""Interactive (multi-round) recommendation: MAGUS's query + item guessing over any top-N recommender.

:mod:`~recx.interactive.words` (items as sets of categorical words), :mod:`~recx.interactive.graph` (the relational
word graph), :mod:`~recx.interactive.rounds` (the simulated user and the batched multi-round strategies),
:mod:`~recx.interactive.recipe` (``recx train model=magus``: base model, fitting, report, plot).
"""
