"""The trainer: C-MCR and Ex-MCR projectors from unpaired embedding memories (DESIGN §1).

Everything a run needs lives on the training device as tensors: the overlap memory, and the
pseudo partners, computed once per run by streaming aggregation (`cmcr.training.enhance.aggregate`).
Steps only index those tensors and add fresh completion noise, so an epoch costs a few small
matmuls per batch. A run is a pure function of (memories, config): the seed fixes head
initialisation, the validation split, batch order and noise, and the saved training state holds
the random generator, so a resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import reprlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from cmcr.training.enhance import aggregate, complete
from cmcr.errors import InputError
from cmcr.models.heads import CMCRProjector, ExMCRHead
from cmcr.training.losses import info_nce, intra_alignment

if TYPE_CHECKING:
    from cmcr.data.features import FeatureMemory

METHODS = ("ex-mcr", "c-mcr")
STATE_FILE = "state.pt"
ArrayLike = np.ndarray | torch.Tensor


@dataclass
class TrainConfig:
    """Hyperparameters of one training run; defaults chosen on the synthetic benchmark
    (docs/method.md records the sweep that picked them)."""

    agg_temperature: float = 0.01  # τ_agg: softmax temperature of memory aggregation
    noise_variance: float = 0.004  # σ²: semantic completion noise (0 disables completion)
    top_k: int | None = None  # aggregate over each query's k nearest memory rows only
    semantic_consistency: bool = True  # False: train on overlap pairs only (ablation)
    temperature: float = 0.1  # τ: InfoNCE temperature
    intra_weight: float = 0.1  # λ: weight of the intra-MCR alignment term
    hidden: int = 1024  # projector hidden width
    dim_out: int | None = None  # C-MCR connected-space width (None: the X encoder's width)
    epochs: int = 20
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_fraction: float = 0.05  # of all steps, linear warm-up before the cosine decay
    seed: int = 0
    val_fraction: float = 0.05  # overlap rows held out for early stopping (0: none)
    val_max_rows: int = 5000
    patience: int = 5  # epochs without a better validation R@1 before stopping
    device: str | None = None  # None: "cuda" when available, else "cpu"
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    agg_chunk_size: int = 8192  # memory rows per aggregation block

    @classmethod
    def from_dict(cls, values: Mapping) -> "TrainConfig":
        """Build from a parsed YAML/TOML mapping; unknown keys and wrong types are InputErrors."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(names), key=str)  # YAML keys may be numbers or null
        if unknown:
            raise InputError(f"unknown training option(s) {unknown}; known: {sorted(names)}")
        config = cls(**{key: _coerce(names[key], value) for key, value in values.items()})
        config.check()
        return config

    def check(self) -> None:
        """Reject values that would crash or silently misbehave mid-run."""
        positive = ["agg_temperature", "temperature", "hidden", "epochs", "batch_size", "lr",
                    "patience", "agg_chunk_size", "val_max_rows"]
        bad = [name for name in positive if not getattr(self, name) > 0]
        bad += [name for name in ("noise_variance", "intra_weight", "weight_decay")
                if getattr(self, name) < 0]
        bad += [name for name in ("val_fraction", "warmup_fraction")
                if not 0 <= getattr(self, name) < 1]
        bad += [name for name in ("top_k", "dim_out")
                if getattr(self, name) is not None and getattr(self, name) < 1]
        if bad:
            raise InputError(f"training option(s) out of range: {', '.join(bad)} "
                             f"(got {[getattr(self, name) for name in bad]})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _coerce(spec: dataclasses.Field, value):
    """Accept ints for floats and None for optionals; anything else must match the default's type."""
    kind = type(spec.default)
    optional = spec.default is None or "None" in str(spec.type)
    if value is None and optional:
        return None
    if isinstance(value, bool) != (kind is bool):
        raise InputError(f"training option {spec.name}={reprlib.repr(value)} must be of type {spec.type}")
    wanted = {"int | None": int, "str | None": str}.get(str(spec.type), kind)
    if wanted is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, wanted):
        raise InputError(f"training option {spec.name}={reprlib.repr(value)} must be of type {spec.type}")
    return value


@dataclass
class ConnectionMemories:
    """Unpaired memories of one connection (docs/architecture.md): unit rows, arrays or tensors.

    `o_x[i]` and `o_y[i]` embed the same overlap item with X and Y; `p` (X only) and `q`
    (Y only) are unrelated item sets.
    """

    o_x: ArrayLike
    o_y: ArrayLike
    p: ArrayLike
    q: ArrayLike
    x: str
    y: str

    def check(self) -> None:
        if self.o_x.shape[0] != self.o_y.shape[0]:
            raise InputError(f"overlap memories must be row-aligned: {self.x} has "
                             f"{self.o_x.shape[0]} rows, {self.y} has {self.o_y.shape[0]}")
        if self.o_x.shape[1] != self.p.shape[1] or self.o_y.shape[1] != self.q.shape[1]:
            raise InputError(f"widths differ within one MCR: o_x {tuple(self.o_x.shape)}, p "
                             f"{tuple(self.p.shape)}, o_y {tuple(self.o_y.shape)}, q "
                             f"{tuple(self.q.shape)}")
        if min(self.o_x.shape[0], self.p.shape[0], self.q.shape[0]) < 2:
            raise InputError("every memory needs at least 2 rows to train on")


@dataclass
class TrainResult:
    """Trained heads (encoder name → module, eval mode, CPU), per-epoch history, final metrics."""

    heads: dict[str, nn.Module]
    history: dict[str, list[float]]
    metrics: dict[str, float]
    config: TrainConfig


@dataclass
class _Views:
    """Aligned rows of one aggregation centre: two base (X) views and two leaf (Y) views."""

    x_o: torch.Tensor
    x_p: torch.Tensor
    y_o: torch.Tensor
    y_q: torch.Tensor

    def tensors(self) -> tuple[torch.Tensor, ...]:
        # not dataclasses.astuple: it deep-copies every tensor
        return self.x_o, self.x_p, self.y_o, self.y_q

    def take(self, index: torch.Tensor) -> "_Views":
        return _Views(*(view[index].float() for view in self.tensors()))

    def __len__(self) -> int:
        return self.x_o.shape[0]


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

    `valid` = (p, q) row-aligned true pairs, when known (e.g. the synthetic world): their q→p
    R@1 is logged each epoch for inspection only; model selection uses the held-out overlap.
    With `state_dir`, the state is saved after every epoch and an existing state there is
    resumed. `on_epoch_end(epoch, history)` is called after each saved epoch.
    """
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {METHODS}")
    config.check()
    mem.check()
    device = _pick_device(config.device)
    started = time.perf_counter()
    train_rows, val_rows = _split_overlap(mem.o_x.shape[0], config)
    views = _pseudo_views(mem, train_rows, method, config, device)
    pseudo_seconds = time.perf_counter() - started
    heads = _build_heads(mem, method, config, device)
    trainer = _Trainer(heads, views, method, config, device)
    val_pairs = None if val_rows is None else _to_pairs(mem.o_y, mem.o_x, val_rows, device)
    valid_pairs = None if valid is None else _to_pairs(valid[1], valid[0], None, device)
    state = trainer.restore(state_dir) if state_dir else _RunState()
    epochs = tqdm(range(state.epoch, config.epochs), desc=f"train {mem.y}→{mem.x} ({method})",
                  initial=state.epoch, total=config.epochs, disable=not progress)
    for epoch in epochs:
        if state.epochs_without_gain >= config.patience:  # also when resuming a stopped run
            break
        losses = trainer.run_epoch(state)
        scores = {"val_r1": trainer.recall_at_1(val_pairs)}
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

    def __init__(self, heads: dict[str, nn.Module], views: list[_Views], method: str,
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
        self.noise_std = math.sqrt(config.noise_variance)
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

    def _complete(self, views: _Views) -> _Views:
        return _Views(*(complete(view, self.noise_std, self.generator)
                        for view in views.tensors()))

    def _losses(self, batches: list[_Views]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.method == "c-mcr":
            return self._cmcr_losses(batches[0])
        return self._exmcr_losses(batches)

    def _cmcr_losses(self, batch: _Views):
        """L_inter on overlap and pseudo pairs, L_intra inside each MCR (DESIGN §1)."""
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

    def _exmcr_losses(self, batches: list[_Views]):
        """Dense alignment of every leaf view with every base view, averaged over centres.

        The base space is frozen, so its modality gap cannot close; the alignment term instead
        pulls each leaf view onto its own base partner (o_y → o_x, q → p), landing the leaf
        inside the base's modality cones.
        """
        (leaf,) = self.heads.values()
        tau = self.config.temperature
        inter, intra = [], []
        for batch in batches:
            if not self.config.semantic_consistency:
                y_o = leaf(batch.y_o).float()
                inter.append(info_nce(y_o, batch.x_o, tau))
                intra.append(intra_alignment(y_o, batch.x_o))
                continue
            y_o, y_q = leaf(torch.cat([batch.y_o, batch.y_q])).float().chunk(2)
            inter.append(sum(info_nce(leaf_view, base_view, tau)
                             for leaf_view in (y_o, y_q) for base_view in (batch.x_o, batch.x_p)))
            intra.append(intra_alignment(y_o, batch.x_o) + intra_alignment(y_q, batch.x_p))
        return torch.stack(inter).mean(), torch.stack(intra).mean()

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
        directory = Path(state_dir)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {
            "config": self.config.to_dict(), "method": self.method,
            "heads": {name: head.state_dict() for name, head in self.heads.items()},
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "run": dataclasses.asdict(state),
        }
        partial = directory / (STATE_FILE + ".partial")
        torch.save(payload, partial)
        partial.replace(directory / STATE_FILE)

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


def _split_overlap(rows: int, config: TrainConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """Seeded hold-out of overlap rows for early stopping; sorted so memmap reads are sequential."""
    order = np.random.default_rng(config.seed).permutation(rows)
    held_out = min(config.val_max_rows, int(round(config.val_fraction * rows)))
    if held_out < 2:
        return np.sort(order), None
    if rows - held_out < 2:
        raise InputError(f"val_fraction {config.val_fraction} leaves no overlap rows to train on")
    return np.sort(order[held_out:]), np.sort(order[:held_out])


def _rows_on(array: ArrayLike, rows: np.ndarray | None, device: torch.device) -> torch.Tensor:
    """Selected rows as float16 on the device: half the memory, ample precision for unit rows."""
    if isinstance(array, torch.Tensor):
        picked = array if rows is None else array[torch.from_numpy(rows).to(array.device)]
    else:
        picked = torch.from_numpy(np.array(array if rows is None else array[rows],
                                           dtype=np.float32))  # a copy: memmaps are read-only
    return F.normalize(picked.to(device=device, dtype=torch.float32), dim=1).half()


def _to_pairs(queries: ArrayLike, gallery: ArrayLike, rows: np.ndarray | None,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    if rows is None and gallery.shape[0] != queries.shape[0]:
        raise InputError("validation pairs must be row-aligned (as many p rows as q rows)")
    return _rows_on(queries, rows, device), _rows_on(gallery, rows, device)


def _pseudo_views(mem: ConnectionMemories, rows: np.ndarray, method: str, config: TrainConfig,
                  device: torch.device) -> list[_Views]:
    """Pseudo partners, computed once per run: overlap-centred always; Ex-MCR adds p- and
    q-centred views (DESIGN §1), each capped at the overlap size so one epoch visits each
    about once."""
    o_x, o_y = _rows_on(mem.o_x, rows, device), _rows_on(mem.o_y, rows, device)
    mix = _mixer(config, device)
    if not config.semantic_consistency:
        return [_Views(o_x, o_x, o_y, o_y)]
    views = [_Views(o_x, mix(o_x, mem.p), o_y, mix(o_y, mem.q))]
    if method == "ex-mcr":
        generator = np.random.default_rng(config.seed + 1)
        p = _rows_on(mem.p, _subset(mem.p.shape[0], len(rows), generator), device)
        q = _rows_on(mem.q, _subset(mem.q.shape[0], len(rows), generator), device)
        x_o, y_o = _mix_pair(mix, p, o_x, o_y)
        views.append(_Views(x_o, p, y_o, mix(y_o, mem.q)))
        y_o, x_o = _mix_pair(mix, q, o_y, o_x)
        views.append(_Views(x_o, mix(x_o, mem.p), y_o, q))
    return views


def _mixer(config: TrainConfig, device: torch.device) -> Callable:
    def mix(queries, memory, values=None):
        return aggregate(queries, memory, config.agg_temperature, values=values,
                         top_k=config.top_k, chunk_size=config.agg_chunk_size,
                         device=device).half()
    return mix


def _mix_pair(mix: Callable, queries: torch.Tensor, keys: torch.Tensor, partner: torch.Tensor):
    """Aggregate over `keys` and mix the row-aligned `partner` with the same weights."""
    both = mix(queries, keys, torch.cat([keys, partner], dim=1))
    own, other = both.float().chunk(2, dim=1)
    return F.normalize(own, dim=1).half(), F.normalize(other, dim=1).half()


def _subset(size: int, limit: int, generator: np.random.Generator) -> np.ndarray | None:
    return None if size <= limit else np.sort(generator.choice(size, limit, replace=False))


def _build_heads(mem: ConnectionMemories, method: str, config: TrainConfig,
                 device: torch.device) -> dict[str, nn.Module]:
    torch.manual_seed(config.seed)
    dim_x, dim_y = mem.o_x.shape[1], mem.o_y.shape[1]
    if method == "ex-mcr":
        heads = {mem.y: ExMCRHead(dim_in=dim_y, hidden=config.hidden, dim_out=dim_x)}
    else:
        dim_out = config.dim_out or dim_x
        heads = {mem.x: CMCRProjector(dim_in=dim_x, hidden=config.hidden, dim_out=dim_out),
                 mem.y: CMCRProjector(dim_in=dim_y, hidden=config.hidden, dim_out=dim_out)}
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


def save_training_curve(history: Mapping[str, list[float]], path: str | Path,
                        title: str = "training") -> Path:
    """Loss and validation R@1 per epoch as a PNG (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["loss"]) + 1)
    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(9, 3.5))
    for name in ("loss", "inter", "intra"):
        loss_axis.plot(epochs, history[name], label=name)
    loss_axis.set(xlabel="epoch", ylabel="loss", title=title)
    loss_axis.legend()
    for name in ("val_r1", "valid_q2p_r1"):
        if name in history:
            metric_axis.plot(epochs, history[name], label=name)
    metric_axis.set(xlabel="epoch", ylabel="R@1 (%)", title="held-out retrieval")
    metric_axis.legend()
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> TrainConfig:
    """A TrainConfig from a YAML/TOML file of field values, then `key=value` overrides
    (values parsed as YAML, so `top_k=null`, `amp=false`, `lr=3e-4` all work)."""
    from cmcr.config import parse_override, read_config_file

    values = read_config_file(path) if path else {}
    values.update(parse_override(override) for override in overrides)
    return TrainConfig.from_dict(values)


def train_space(memory: "FeatureMemory", method: str, config: TrainConfig, *,
                progress: bool = True):
    """Train every connection whose four memory files are present in `memory`.

    Ex-MCR returns one UnifiedSpace (CLIP base plus one leaf head per connection); C-MCR
    returns {folder name: UnifiedSpace} with one pairwise space per connection. The report maps
    connection name → {"metrics", "history"}.
    """
    from cmcr.data.features import available_connections, load_connection

    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {METHODS}")
    memory.validate()
    names = available_connections(memory)
    if not names:
        raise InputError(
            f"{memory.root} holds no complete connection: clap→clip needs text/clip, text/clap, "
            "image/clip, audio/clap; ulip→clip needs image/clip, image/ulip, text/clip, "
            "points/ulip")
    results = {name: train_connection(ConnectionMemories(**load_connection(memory, name)),
                                      config, method, progress=progress) for name in names}
    report = {name: {"metrics": _json_safe(result.metrics), "history": result.history}
              for name, result in results.items()}
    return build_spaces(results, method, config), report


def build_spaces(results: Mapping[str, TrainResult], method: str, config: TrainConfig, *,
                 encoders: dict[str, dict] | None = None):
    """Assemble trained connections (name → TrainResult) into spaces.

    Ex-MCR gives one UnifiedSpace (CLIP base plus every connection's leaf head); C-MCR gives
    {"clap-clip": space, ...}, one pairwise space per connection. `encoders` adds per-encoder
    facts (weights, revision) to config.json, as `UnifiedSpace.build` describes.
    """
    from cmcr.models.space import UnifiedSpace

    hyperparameters = config.to_dict()
    metrics = {name: _json_safe(result.metrics) for name, result in results.items()}
    if method == "ex-mcr":
        heads = {leaf: head for result in results.values() for leaf, head in result.heads.items()}
        return UnifiedSpace.build(method, heads, base="clip", encoders=encoders,
                                  hyperparameters=hyperparameters, metrics=metrics)
    return {name.replace("→", "-"): UnifiedSpace.build(
        method, result.heads, encoders=encoders, hyperparameters=hyperparameters,
        metrics=metrics[name]) for name, result in results.items()}


def _json_safe(metrics: Mapping) -> dict:
    """NaN (no validation split) becomes None so config.json stays strict JSON."""
    return {key: None if isinstance(value, float) and math.isnan(value) else value
            for key, value in metrics.items()}
