"""Scale past one process: DDP training, sharded evaluation and attribution, chunked full ranking.

- ``init_distributed`` joins the process group that ``torchrun`` describes (NCCL on GPUs,
  gloo on CPU); ``launch_local`` spawns local workers for tests and notebooks.
- ``fit_distributed`` trains SASRec with ``DistributedDataParallel``.
- ``evaluate_sharded`` splits users over ranks and reproduces ``evaluate`` exactly;
  ``explain_users_sharded`` does the same for SHAP attributions.
- ``chunked_rank_users`` ranks users in batches against item chunks with a running top-k
  merge, so memory stays bounded for catalogs of any size.
- ``save_run`` and ``load_run`` write and open a run folder (checkpoint plus results).

The command line is ``python -m recwidgets.distributed`` (see ``recwidgets.distributed.cli``).
"""

from recwidgets.distributed.chunked import (
    ChunkScorer,
    FactorScorer,
    ModelScorer,
    SASRecScorer,
    chunked_rank_users,
    peak_block_bytes,
)
from recwidgets.distributed.context import DistContext, current_context, free_port, init_distributed, launch_local
from recwidgets.distributed.ddp import fit_distributed, parameters_digest, shard_order
from recwidgets.distributed.runs import load_result, load_run, save_result, save_run
from recwidgets.distributed.sharding import (
    evaluate_sharded,
    explain_users_sharded,
    gather_frames,
    gather_objects,
    gather_ranking,
    shard_bounds,
    shard_users,
)

__all__ = [
    "ChunkScorer",
    "DistContext",
    "FactorScorer",
    "ModelScorer",
    "SASRecScorer",
    "chunked_rank_users",
    "current_context",
    "evaluate_sharded",
    "explain_users_sharded",
    "fit_distributed",
    "free_port",
    "gather_frames",
    "gather_objects",
    "gather_ranking",
    "init_distributed",
    "launch_local",
    "load_result",
    "load_run",
    "parameters_digest",
    "peak_block_bytes",
    "save_result",
    "save_run",
    "shard_bounds",
    "shard_order",
    "shard_users",
]
