"""The trainer: C-MCR and Ex-MCR projectors from unpaired embedding memories.

Everything a run needs lives on the training device as tensors: the overlap memory, and the
pseudo partners, computed once per run (`cmcr.training.memories`). Steps only index those tensors
and add fresh completion noise, so an epoch costs a few small matmuls per batch. A run is a pure
function of (memories, config): the seed fixes head initialisation, the validation split, batch
order and noise, and the saved training state holds the random generator, so a resumed run ends
with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from cmcr.atomic import replacing
from cmcr.errors import InputError
from cmcr.models.heads import CMCRProjector, ExMCRHead, OneLayerProjector
from cmcr.models.space_format import METHODS
from cmcr.training.config import TrainConfig
from cmcr.training.enhance import complete, noise_std
from cmcr.training.losses import info_nce, intra_alignment, paired_gap
from cmcr.training.memories import (ArrayLike, ConnectionMemories, Views, held_out_pseudo_pairs,
                                    memory_centres, pseudo_views, split_overlap, to_pairs)

STATE_FILE = "state.pt"


@dataclass
class TrainResult:
    """Trained heads (encoder name → module, eval mode, CPU), per-epoch history, final metrics."""

    heads: dict[str, nn.Module]
    history: dict[str, list[float]]
    metrics: dict[str, float]
    config: TrainConfig


@dataclass
class _RunState:
    """Everything that changes during a run; saved whole so that resuming is exact."""

    epoch: int = 0
    step: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)
    best_metric: float = -1.0
    best_epoch: int = 0
    best_heads: dict[str, dict] = field(default_factory=dict)
    epochs_without_gain: int = 0


def train_connection(
    mem: ConnectionMemories,
    config: TrainConfig,
    method: str = "ex-mcr",
    valid: tuple[ArrayLike, ArrayLike] | None = None,
    *,
    state_dir: str | Path | None = None,
    on_epoch_end: Callable[[int, dict[str, list[float]]], None] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train the heads of one connection (C-MCR: both projectors; Ex-MCR: the leaf Y → base X).

    Held-out overlap rows give two signals each epoch: `val_overlap_r1` (O_Y → O_X R@1) and
    `val_pseudo_r1` (R@1 between their pseudo partners, q̂ → p̂); `config.selection` picks which
    (or their mean, "mix") is `val_r1`, the one early stopping and the best epoch follow.
    `valid` = (p, q) row-aligned true pairs, when known (e.g. the synthetic world): their q→p
    R@1 is logged each epoch for inspection only. With `state_dir`, the state is saved after
    every epoch and an existing state there is resumed. `on_epoch_end(epoch, history)` is called
    after each saved epoch.
    """
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {METHODS}")
    config.check()
    config = config.for_method(method)
    mem.check()
    device = _pick_device(config.device)
    started = time.perf_counter()
    train_rows, val_rows = split_overlap(mem.o_x.shape[0], config)
    centre = memory_centres(mem, config, device)
    views = pseudo_views(mem, train_rows, method, config, device, centre)
    pseudo_seconds = time.perf_counter() - started
    heads = _build_heads(mem, method, config, device)
    trainer = _Trainer(heads, views, method, config, device)
    val_pairs = None if val_rows is None else {
        "val_overlap_r1": to_pairs(mem.o_y, mem.o_x, val_rows, device),
        "val_pseudo_r1": held_out_pseudo_pairs(mem, val_rows, config, device, centre)}
    valid_pairs = None if valid is None else to_pairs(valid[1], valid[0], None, device)
    state = trainer.restore(state_dir) if state_dir else _RunState()
    epochs = tqdm(range(state.epoch, config.epochs), desc=f"train {mem.y}→{mem.x} ({method})",
                  initial=state.epoch, total=config.epochs, disable=not progress)
    for epoch in epochs:
        if state.epochs_without_gain >= config.patience:  # also when resuming a stopped run
            break
        losses = trainer.run_epoch(state)
        scores = trainer.selection_scores(val_pairs)
        if valid_pairs is not None:
            scores["valid_q2p_r1"] = trainer.recall_at_1(valid_pairs)
        _record(state, epoch, {**losses, **scores, "lr": trainer.lr(state.step)})
        _track_best(state, trainer, scores["val_r1"], has_val=val_pairs is not None)
        if state_dir:
            trainer.save(state_dir, state)
        epochs.set_postfix(loss=f"{losses['loss']:.3f}", val_r1=f"{scores['val_r1']:.1f}")
        if on_epoch_end:
            on_epoch_end(epoch, state.history)
    return _finish(heads, state, config, method, {
        "pseudo_seconds": pseudo_seconds, "train_rows": len(train_rows),
        "val_rows": 0 if val_rows is None else len(val_rows),
        "seconds": time.perf_counter() - started})


class _Trainer:
    """Optimisation of the heads over precomputed views: one epoch at a time."""

    def __init__(self, heads: dict[str, nn.Module], views: list[Views], method: str,
                 config: TrainConfig, device: torch.device) -> None:
        self.heads, self.views, self.method, self.config = heads, views, method, config
        self.device = device
        self.params = [p for head in heads.values() for p in head.parameters()]
        # fused: one kernel per step on CUDA instead of several per parameter tensor
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay,
                                           fused=device.type == "cuda")
        self.generator = torch.Generator(device=device).manual_seed(config.seed)
        self.batch_size = min(config.batch_size, len(views[0]))
        self.steps_per_epoch = max(1, len(views[0]) // self.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        x_width, y_width = views[0].x_o.shape[1], views[0].y_o.shape[1]
        self.noise_stds = [noise_std(config.noise_cosine, width)
                           for width in (x_width, x_width, y_width, y_width)]  # Views order
        self.autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                                       enabled=config.amp and device.type == "cuda")

    def lr(self, step: int) -> float:
        """Linear warm-up, then cosine decay to zero over the whole run."""
        warmup = max(1, round(self.config.warmup_fraction * self.total_steps))
        if step < warmup:
            return self.config.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, self.total_steps - warmup)
        return self.config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def run_epoch(self, state: _RunState) -> dict[str, float]:
        for head in self.heads.values():
            head.train()
        orders = [self._order(len(view)) for view in self.views]
        totals = torch.zeros(3, device=self.device)  # loss, inter, intra; summed on device
        for batch in range(self.steps_per_epoch):
            rows = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
            batches = [self._complete(view.take(order[rows]))
                       for view, order in zip(self.views, orders)]
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr(state.step)
            with self.autocast:
                inter, intra = self._losses(batches)
            loss = inter + self.config.intra_weight * intra
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            state.step += 1
            totals += torch.stack([loss, inter, intra]).detach()
        return dict(zip(("loss", "inter", "intra"), (totals / self.steps_per_epoch).tolist()))

    def _order(self, size: int) -> torch.Tensor:
        """A fresh permutation, tiled when a view is shorter than one epoch of overlap rows."""
        needed = self.steps_per_epoch * self.batch_size
        repeats = -(-needed // size)
        return torch.cat([torch.randperm(size, generator=self.generator, device=self.device)
                          for _ in range(repeats)])[:needed]

    def _complete(self, views: Views) -> Views:
        return Views(*(complete(view, std, self.generator)
                        for view, std in zip(views.tensors(), self.noise_stds)))

    def _losses(self, batches: list[Views]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.method == "c-mcr":
            return self._cmcr_losses(batches[0])
        return self._exmcr_losses(batches)

    def _cmcr_losses(self, batch: Views):
        """L_inter on overlap and pseudo pairs, L_intra inside each MCR."""
        x_head, y_head = self.heads.values()
        tau = self.config.temperature
        if not self.config.semantic_consistency:
            x_o, y_o = x_head(batch.x_o).float(), y_head(batch.y_o).float()
            return info_nce(x_o, y_o, tau), torch.zeros((), device=self.device)
        x_o, x_p = x_head(torch.cat([batch.x_o, batch.x_p])).float().chunk(2)
        y_o, y_q = y_head(torch.cat([batch.y_o, batch.y_q])).float().chunk(2)
        inter = info_nce(x_o, y_o, tau) + info_nce(x_p, y_q, tau)
        intra = intra_alignment(x_o, x_p) + intra_alignment(y_o, y_q)
        return inter, intra

    def _exmcr_losses(self, batches: list[Views]):
        """Dense alignment of every leaf view with every base view (f_m's job), averaged over
        centres, and the intra term the objective names.

        "decoupled": the leaf's two modalities are aligned with each other at the output of the
        linear stage f1, inside the leaf space (its modality gap closes there). "anchored": each
        final leaf view is pulled onto its own base partner (o_y → o_x, q → p) instead.
        """
        (leaf,) = self.heads.values()
        tau = self.config.temperature
        decoupled = self.config.exmcr_objective == "decoupled"
        inter, intra = [], []
        for batch in batches:
            if not self.config.semantic_consistency:
                y_o = leaf(batch.y_o).float()
                inter.append(info_nce(y_o, batch.x_o, tau))
                intra.append(torch.zeros((), device=self.device) if decoupled
                             else intra_alignment(y_o, batch.x_o))
                continue
            inner, out = leaf.stages(torch.cat([batch.y_o, batch.y_q]))
            y_o, y_q = out.float().chunk(2)
            inter.append(sum(info_nce(leaf_view, base_view, tau)
                             for leaf_view in (y_o, y_q) for base_view in (batch.x_o, batch.x_p)))
            intra.append(paired_gap(*inner.float().chunk(2)) if decoupled
                         else intra_alignment(y_o, batch.x_o) + intra_alignment(y_q, batch.x_p))
        return torch.stack(inter).mean(), torch.stack(intra).mean()

    def selection_scores(self, val_pairs: dict | None) -> dict[str, float]:
        """The held-out signals, and `val_r1`: the one `config.selection` names (NaN without
        held-out rows)."""
        if val_pairs is None:
            return {"val_r1": float("nan")}
        scores = {name: self.recall_at_1(pairs) for name, pairs in val_pairs.items()}
        chosen = {"overlap": scores["val_overlap_r1"], "pseudo": scores["val_pseudo_r1"],
                  "mix": (scores["val_overlap_r1"] + scores["val_pseudo_r1"]) / 2}
        return {**scores, "val_r1": chosen[self.config.selection]}

    @torch.no_grad()
    def recall_at_1(self, pairs: tuple[torch.Tensor, torch.Tensor] | None) -> float:
        """Percent of Y queries whose own X partner scores highest (ties count against)."""
        if pairs is None:
            return float("nan")
        queries, gallery = self.project(pairs[0], "y"), self.project(pairs[1], "x")
        hits = 0
        for start in range(0, queries.shape[0], 1024):
            scores = queries[start:start + 1024] @ gallery.T
            own_rows = torch.arange(start, start + scores.shape[0], device=scores.device)
            own = scores.gather(1, own_rows[:, None])
            hits += int(((scores >= own).sum(dim=1) == 1).sum())
        return 100.0 * hits / queries.shape[0]

    def project(self, rows: torch.Tensor, side: str) -> torch.Tensor:
        """Rows of one MCR (side "x" or "y") in the connected space, heads in eval mode."""
        names = list(self.heads)
        if self.method == "ex-mcr" and side == "x":
            return F.normalize(rows.float(), dim=1)
        head = self.heads[names[0] if side == "x" or self.method == "ex-mcr" else names[1]]
        head.eval()
        return head(rows.float()).float()

    def save(self, state_dir: str | Path, state: _RunState) -> None:
        """Write the whole run state atomically (a crash mid-write keeps the previous epoch)."""
        payload = {
            "config": self.config.to_dict(), "method": self.method,
            "heads": {name: head.state_dict() for name, head in self.heads.items()},
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "run": dataclasses.asdict(state),
        }
        with replacing(Path(state_dir) / STATE_FILE) as temporary:
            torch.save(payload, temporary)

    def restore(self, state_dir: str | Path) -> _RunState:
        """Load a saved state (if any) and check it belongs to the same configuration."""
        path = Path(state_dir) / STATE_FILE
        if not path.is_file():
            return _RunState()
        try:
            payload = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:
            raise InputError(f"cannot resume from {path}: {exc}") from exc
        if payload["config"] != self.config.to_dict() or payload["method"] != self.method:
            raise InputError(f"{path} was saved by a run with another method or configuration; "
                             "use a fresh state directory or the same settings")
        for name, head in self.heads.items():
            head.load_state_dict(payload["heads"][name])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.generator.set_state(payload["generator"].cpu())
        return _RunState(**payload["run"])


def _pick_device(requested: str | None) -> torch.device:
    if requested is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {requested!r} requested but no CUDA GPU is available")
    return device


def _build_heads(mem: ConnectionMemories, method: str, config: TrainConfig,
                 device: torch.device) -> dict[str, nn.Module]:
    torch.manual_seed(config.seed)
    dim_x, dim_y = mem.o_x.shape[1], mem.o_y.shape[1]
    if method == "ex-mcr":
        heads = {mem.y: ExMCRHead(dim_in=dim_y, hidden=config.hidden, dim_out=dim_x)}
    else:
        dim_out = config.dim_out or dim_x
        kind = mem.cmcr_projector if config.cmcr_projector == "official" else config.cmcr_projector
        heads = {name: (OneLayerProjector(dim_in=dim, dim_out=dim_out) if kind == "one-layer" else
                        CMCRProjector(dim_in=dim, hidden=config.hidden, dim_out=dim_out))
                 for name, dim in ((mem.x, dim_x), (mem.y, dim_y))}
    return {name: head.to(device) for name, head in heads.items()}


def _record(state: _RunState, epoch: int, values: dict[str, float]) -> None:
    state.epoch = epoch + 1
    for name, value in values.items():
        state.history.setdefault(name, []).append(float(value))


def _track_best(state: _RunState, trainer: _Trainer, metric: float, has_val: bool) -> None:
    """Keep the best heads by validation R@1 (the last ones when there is no validation)."""
    if not has_val or metric > state.best_metric:
        state.best_metric = metric if has_val else float("nan")
        state.best_epoch = state.epoch
        state.best_heads = {name: copy.deepcopy(head.state_dict())
                            for name, head in trainer.heads.items()}
        state.epochs_without_gain = 0
    else:
        state.epochs_without_gain += 1


def _finish(heads: dict[str, nn.Module], state: _RunState, config: TrainConfig, method: str,
            timings: dict[str, float]) -> TrainResult:
    for name, head in heads.items():
        head.load_state_dict(state.best_heads[name])
        head.cpu().eval()
    metrics = {"method": method, "best_epoch": state.best_epoch, "epochs_run": state.epoch,
               "val_r1": state.best_metric, **timings}
    return TrainResult(heads=heads, history=state.history, metrics=metrics, config=config)
