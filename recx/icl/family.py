"""In-context learning (and FEEDER): inference with a causal LM over a demonstration pool, optionally pre-selected
(:mod:`recx.icl.recipe`); ``model=feeder_ft`` fine-tunes inside it through Lightning (:mod:`recx.icl.finetune`)."""

from __future__ import annotations

from recx.families import Evaluation, Family


def task(cfg, dm, life) -> Evaluation:
    from recx.icl import recipe

    return Evaluation(run=lambda: recipe.run(cfg), prints=True)


FAMILY = Family(name="icl", metric="icl_accuracy", task=task, ddp=lambda cfg: False)
