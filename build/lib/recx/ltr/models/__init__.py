"""Learning-to-rank models: every one follows :class:`~recx.ltr.models.base.LTRModel`'s batch contract."""
