"""Ending a multi-process run cleanly."""

import torch


def finish_distributed():
    """Wait for every rank (rank 0 writes the reports while the others are done) and tear the process group down,
    instead of leaving it to interpreter exit, where a rank that exits first can abort its peer's gloo sockets."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
