"""Layer 5, training: the conditional flow matching loop, batches, torch.distributed, reflow."""

__all__: list[str] = []
