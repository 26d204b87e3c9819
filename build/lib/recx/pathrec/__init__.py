"""Learning-path recommendation: a knowledge-tracing simulator (DKT) and the SRC set-to-sequence policy.

:mod:`~recx.pathrec.data` (student sequences, readers), :mod:`~recx.pathrec.sources` (ASSIST2009, generated),
:mod:`~recx.pathrec.dkt` (the simulator model and its training), :mod:`~recx.pathrec.env` (the batched environment
and its reward), :mod:`~recx.pathrec.episodes` (targets, initial logs, candidate sets), :mod:`~recx.pathrec.policy`
(SRC and the baselines), :mod:`~recx.pathrec.recipe` (``recx train model=dkt|src|src_random|src_rule|src_gru``).
"""
