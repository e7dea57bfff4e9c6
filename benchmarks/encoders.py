"""The `encoders` section: throughput of each frozen tower at batch 1 (the unbatched baseline) and
at its best batch; bf16 autocast against fp32 on CUDA."""

from __future__ import annotations

import torch

from benchmarks.bench import Bench
from benchmarks.figures import Figure, throughput
from benchmarks.inputs import sample_inputs
from cmcr.models.registry import MODALITIES, MODALITY_ENCODERS

# Each modality through the encoder the app embeds it with (the registry's preferred one).
TOWERS: tuple[tuple[str, str], ...] = tuple((MODALITY_ENCODERS[modality][0], modality) for modality in MODALITIES)


def bench_encoders(bench: Bench) -> list[Figure]:
    """Each tower at batch 1 (the unbatched baseline) and its best batch; bf16 vs fp32 on CUDA."""
    figures = []
    for name, modality in TOWERS:
        best: dict[str, tuple[float, int]] = {}
        for dtype in bench.precisions:
            rates = _encoder_rates(bench, name, modality, dtype)
            best[dtype] = max((rate, batch) for batch, rate in rates.items())
            rate, batch = best[dtype]
            figures.append(Figure(
                "encoders", f"{name} {modality} {dtype}, best batch ({batch})", f"{modality} items/s",
                rate, f"{name} {modality} {dtype}, batch 1", rates[1], higher_is_better=True))
        if "bfloat16" in best:
            figures.append(Figure(
                "encoders", f"{name} {modality} bf16 autocast, batch {best['bfloat16'][1]}",
                f"{modality} items/s", best["bfloat16"][0],
                f"{name} {modality} fp32, batch {best['float32'][1]}", best["float32"][0],
                higher_is_better=True))
    return figures


def _encoder_rates(bench: Bench, name: str, modality: str, dtype: str) -> dict[int, float]:
    """Items/s per batch size, in increasing batch order; a batch that runs out of GPU memory
    ends the sweep (the larger ones would too) instead of the whole run."""
    encoder = bench.encoder(name, dtype)
    rates = {}
    for batch in sorted(bench.plan.encoder_batches):
        items = sample_inputs(modality, batch, bench)
        bench.progress(f"{name} {modality} {dtype} batch {batch}")
        try:
            timing = bench.stopwatch.time(lambda: encoder.embed(modality, items, batch_size=batch))
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            bench.progress(f"{name} {modality} {dtype}: batch {batch} does not fit in GPU memory")
            break
        rates[batch] = throughput(batch, timing)
    return rates
