"""MAGUS (interactive recommendation): a base top-N run (nested, through the run life), then the multi-round
simulation of :mod:`recx.interactive.recipe` over its scores."""

from __future__ import annotations

from recx.families import Evaluation, Family


def task(cfg, dm, life) -> Evaluation:
    from recx.interactive import recipe

    return Evaluation(run=lambda: recipe.run(cfg, life.train), prints=True)


FAMILY = Family(name="interactive", metric="interactive", task=task, ddp=lambda cfg: False)
