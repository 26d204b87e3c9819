"""In-context learning: demonstration selection and FEEDER's pre-selection.

:mod:`~recx.icl.data` (text-classification readers), :mod:`~recx.icl.selectors` (random, similarity, diversity),
:mod:`~recx.icl.feeder` (sufficiency / necessity and the bottom-up tree, against any judge of LM correctness).
The LM wrapper, the ICL evaluation run and bi-level fine-tuning are not built yet (issue 11 is open).
"""
