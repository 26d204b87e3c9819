"""Top-N models: plain ``nn.Module``s implementing :class:`recx.topn.models.base.TopNModel`."""
