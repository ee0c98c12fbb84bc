"""The optimizer of online updates: Adam, with a lazy row-wise Adam for the tables in sparse mode.

Plain Adam moves a parameter whose gradient is zero as long as its first moment is not
zero, so masking the gradient of an embedding row does not keep the row still once the
optimizer state is carried over. In sparse mode the item and user tables therefore get
``torch.optim.SparseAdam``: their masked gradient is handed over as a sparse tensor of the
allowed rows, and SparseAdam updates the moments and values of those rows only (the
"lazy Adam" of TensorFlow). Every other parameter uses ``torch.optim.Adam``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from recwidgets.data.log import PAD

#: Adam betas of online updates; the same as SASRec training uses.
BETAS = (0.9, 0.98)


class UpdateOptimizer:
    """Adam over a module, with SparseAdam for the row tables when ``sparse`` is set.

    ``tables`` maps names to the parameters whose row ``i`` belongs to item or user ``i``.
    Row 0 (padding) of every table never changes: its gradient is cleared before each step.
    """

    def __init__(self, module: nn.Module, tables: dict[str, nn.Parameter], *, lr: float, sparse: bool):
        self.sparse = bool(sparse)
        self.tables = dict(tables)
        table_ids = {id(parameter) for parameter in self.tables.values()}
        dense = [parameter for parameter in module.parameters() if id(parameter) not in table_ids or not self.sparse]
        self.lr = float(lr)
        self.dense = torch.optim.Adam(dense, lr=self.lr, betas=BETAS)
        # SparseAdam rejects lr=0, and with lr=0 nothing may move anyway, so it is built with
        # a placeholder rate and its step is skipped while lr is 0.
        self.rows = (
            torch.optim.SparseAdam(list(self.tables.values()), lr=self.lr or 1.0, betas=BETAS)
            if self.sparse and self.tables
            else None
        )

    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every parameter group."""
        self.lr = float(lr)
        for group in self.dense.param_groups:
            group["lr"] = self.lr
        if self.rows is not None and self.lr > 0:
            for group in self.rows.param_groups:
                group["lr"] = self.lr

    def zero_grad(self) -> None:
        self.dense.zero_grad(set_to_none=True)
        if self.rows is not None:
            self.rows.zero_grad(set_to_none=True)

    def step(self, allowed_rows: dict[str, torch.Tensor] | None = None) -> None:
        """Take one step. In sparse mode ``allowed_rows[name]`` lists the rows of table ``name`` that may change."""
        for parameter in self.tables.values():
            if parameter.grad is not None:
                parameter.grad[PAD] = 0
        if self.rows is not None:
            for name, parameter in self.tables.items():
                grad = parameter.grad
                if grad is None:
                    continue
                rows = allowed_rows.get(name) if allowed_rows is not None else None
                if rows is None or len(rows) == 0:
                    parameter.grad = None
                    continue
                rows = rows.to(grad.device)
                parameter.grad = torch.sparse_coo_tensor(
                    rows.unsqueeze(0), grad[rows], grad.shape, is_coalesced=True, check_invariants=False
                )
        self.dense.step()
        if self.rows is not None and self.lr > 0:
            self.rows.step()

    def pad_state(self, parameter: nn.Parameter, n_old_rows: int) -> None:
        """Resize the moments of ``parameter`` after it was resized from ``n_old_rows`` rows; new rows start at 0."""
        n_rows = parameter.shape[0]
        for optimizer in (self.dense, self.rows):
            if optimizer is None or parameter not in optimizer.state:
                continue
            state = optimizer.state[parameter]
            for key, value in list(state.items()):
                if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.shape[0] != n_old_rows:
                    continue
                if n_rows < n_old_rows:
                    state[key] = value[:n_rows].clone()
                else:
                    extra = torch.zeros((n_rows - n_old_rows, *value.shape[1:]), dtype=value.dtype, device=value.device)
                    state[key] = torch.cat([value, extra])

    def state_dict(self) -> dict:
        """Return a deep copy of both optimizers' state, tensors on the CPU."""
        state = {"dense": self.dense.state_dict(), "rows": None if self.rows is None else self.rows.state_dict()}
        return _to_cpu(copy.deepcopy(state))

    def load_state_dict(self, state: dict) -> None:
        """Load a state from :meth:`state_dict`; the input is copied, so later steps cannot change it."""
        state = copy.deepcopy(state)
        self.dense.load_state_dict(state["dense"])
        if self.rows is not None and state["rows"] is not None:
            self.rows.load_state_dict(state["rows"])
        self.lr = float(self.dense.param_groups[0]["lr"]) if self.dense.param_groups else self.lr


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_cpu(item) for item in value]
    return value
