"""Process groups: start one from ``torchrun``'s environment, or spawn local workers.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``. ``init_distributed`` reads them and picks the backend, NCCL when CUDA is
available and gloo otherwise. Without those variables it returns a single-process context
and starts no group, so the same code runs under plain ``python``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from recwidgets.errors import ConfigError
from recwidgets.training.trainer import resolve_device

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class DistContext:
    """The place of this process in the group: ``rank`` of ``world_size``, ``device`` and ``backend``.

    ``backend`` is None for a single process without a process group. ``owns_group`` is
    True when ``init_distributed`` started the group, so ``close`` should end it.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    owns_group: bool = False

    @property
    def is_root(self) -> bool:
        """Whether this is rank 0, the process that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether a process group with more than one process is active."""
        return self.backend is not None and self.world_size > 1

    def barrier(self) -> None:
        """Wait for every rank (no-op for a single process)."""
        if self.backend is not None:
            dist.barrier()

    def close(self) -> None:
        """End the process group if this context started it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def pick_backend(backend: str = "auto", device: str | torch.device = "auto") -> str:
    """Return ``"nccl"`` or ``"gloo"``: NCCL only when CUDA is requested or available, gloo otherwise."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend!r} is invalid; use one of {BACKENDS}.")
    if backend != "auto":
        return backend
    wants_cuda = resolve_device(device).type == "cuda" if device != "auto" else torch.cuda.is_available()
    return "nccl" if wants_cuda and dist.is_nccl_available() else "gloo"


def current_context(device: str | torch.device = "cpu") -> DistContext:
    """Return the context of an already started process group, or a single-process one."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())),
            device=torch.device(device),
            backend=dist.get_backend(),
            owns_group=False,
        )
    return DistContext(device=torch.device(device) if device != "auto" else resolve_device("auto"))


def init_distributed(backend: str = "auto", device: str | torch.device = "auto") -> DistContext:
    """Start (or join) the process group described by ``torchrun``'s environment variables.

    ``device="auto"`` gives each rank ``cuda:LOCAL_RANK`` when CUDA is available, else the
    CPU. Without ``WORLD_SIZE`` in the environment, or with ``WORLD_SIZE=1``, no group is
    started and a single-process context comes back.
    """
    if dist.is_available() and dist.is_initialized():
        return current_context(device if device != "auto" else "cpu")

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    chosen = pick_backend(backend, device)

    if chosen == "nccl":
        if not torch.cuda.is_available():
            raise ConfigError("backend='nccl' needs CUDA, which this torch build lacks; use backend='gloo'.")
        resolved = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(resolved)
    elif device == "auto":
        resolved = torch.device("cpu")
    else:
        resolved = resolve_device(device)

    if world_size <= 1:
        return DistContext(rank=0, world_size=1, local_rank=0, device=resolved)

    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ConfigError(
                f"WORLD_SIZE={world_size} is set but {name} is missing; launch with torchrun, or set "
                "MASTER_ADDR and MASTER_PORT."
            )
    dist.init_process_group(backend=chosen, rank=rank, world_size=world_size)
    logger.info("rank %d of %d joined the %s group on %s", rank, world_size, chosen, resolved)
    return DistContext(
        rank=rank, world_size=world_size, local_rank=local_rank, device=resolved, backend=chosen, owns_group=True
    )


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago (for a local rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _spawned(local_rank: int, fn: Callable, world_size: int, port: int, backend: str, args: tuple) -> None:
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(local_rank),
            "LOCAL_RANK": str(local_rank),
            "WORLD_SIZE": str(world_size),
        }
    )
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    context = init_distributed(backend, "cpu" if backend == "gloo" else "auto")
    try:
        fn(context, *args)
    finally:
        context.close()


def launch_local(fn: Callable, world_size: int, *args, backend: str = "gloo") -> None:
    """Run ``fn(context, *args)`` in ``world_size`` local processes joined by a process group.

    The processes are started with ``torch.multiprocessing`` (spawn) and meet on 127.0.0.1
    at a free port. ``fn`` must be importable at module level (it is pickled). An exception
    in any worker is raised here. Intended for tests and notebooks; use ``torchrun`` for jobs.
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ConfigError(f"world_size={world_size!r} is invalid; pass an integer of at least 1.")
    import torch.multiprocessing as mp

    port = free_port()
    mp.spawn(_spawned, args=(fn, world_size, port, backend, args), nprocs=world_size, join=True)
