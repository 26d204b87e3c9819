"""Top-N recommendation: the datamodule, the LightningModule, and the models behind one scoring contract."""
