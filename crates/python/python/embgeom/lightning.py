"""A PyTorch Lightning callback that logs embedding geometry through the trainer's logger
(TensorBoard, W&B, MLflow, CSV), next to the loss. Importing this module needs Lightning.

    from embgeom.lightning import GeometryCallback
    trainer = Trainer(callbacks=[GeometryCallback(key="embeddings")])

The model's ``training_step`` (or ``validation_step``) returns a dict holding the batch's
embeddings under ``key`` (and labels under ``label_key``); at the end of each epoch the
gathered rows are analysed and every scalar metric is logged as ``geometry/<metric>``.
"""

from __future__ import annotations

from typing import Any

try:
    import lightning.pytorch as pl
except ImportError:  # the older package name
    import pytorch_lightning as pl  # type: ignore[no-redef]

from .monitor import Monitor


class GeometryCallback(pl.Callback):
    """Gather embeddings from the step outputs and log their geometry once per epoch.

    Args:
        key: The key of the embeddings in the dict a step returns.
        label_key: The key of the labels in it.
        stage: ``"train"`` (``training_step``) or ``"validation"`` (``validation_step``).
        max_rows: Rows gathered per epoch at most (the most recent are kept).
        **options: The options of :func:`embgeom.analyze`.

    Example:
        >>> trainer = Trainer(callbacks=[GeometryCallback(key="embeddings")])
    """

    def __init__(self, key: str = "embeddings", label_key: str = "labels",
                 stage: str = "train", max_rows: int = 50_000, **options: Any) -> None:
        super().__init__()
        self.key = key
        self.label_key = label_key
        self.stage = stage
        self.monitor = Monitor(max_rows=max_rows, **options)

    def _gather(self, outputs: Any) -> None:
        if isinstance(outputs, dict) and self.key in outputs:
            self.monitor.update(outputs[self.key], outputs.get(self.label_key))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.stage == "train":
            self._gather(outputs)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                                dataloader_idx=0) -> None:
        if self.stage == "validation":
            self._gather(outputs)

    def _log(self, pl_module) -> None:
        scalars = self.monitor.report(pl_module.current_epoch)
        if scalars:
            pl_module.log_dict(scalars, on_epoch=True, prog_bar=False)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.stage == "train":
            self._log(pl_module)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self.stage == "validation":
            self._log(pl_module)
