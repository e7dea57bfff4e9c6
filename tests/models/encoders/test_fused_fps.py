"""The Triton FPS kernel picks exactly the torch loop's points, and "auto" never lets it break a query.

CI has no GPU, so the kernel runs under Triton's CPU interpreter (`TRITON_INTERPRET=1`, which must
be set before the kernel is defined: hence a fresh process). The interpreter executes the same
kernel source with NumPy float32 arithmetic, which is what the GPU build reproduces with
floating-point contraction switched off.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from cmcr.models.encoders import fps
from cmcr.models.encoders.fps import farthest_point_sample
from tests.paths import REPO

ROOT = REPO

INTERPRETED = textwrap.dedent("""
    import json, torch
    from cmcr.models.encoders.fps import farthest_point_sample, start_indices

    generator = torch.Generator().manual_seed(0)
    grid = torch.stack(torch.meshgrid(*(torch.arange(5.0),) * 3, indexing="ij"), -1).reshape(1, -1, 3)
    cases = {
        "random, several tiles": (torch.randn(3, 2100, 3, generator=generator), 96, "farthest"),
        "one tile, every point": (torch.randn(2, 40, 3, generator=generator), 40, "first"),
        "exact ties on a grid": (grid, 60, "first"),
        "repeated points": (torch.randn(1, 300, 3, generator=generator).repeat(1, 4, 1), 128, "farthest"),
        "explicit starts": (torch.randn(2, 1500, 3, generator=generator), 50, torch.tensor([7, 1499])),
    }
    report = {}
    for name, (clouds, samples, start) in cases.items():
        fused = farthest_point_sample(clouds, samples, start, backend="triton")
        loop = farthest_point_sample(clouds, samples, start, backend="torch")
        report[name] = {"equal": torch.equal(fused, loop), "distinct": all(
            len(set(row.tolist())) == min(samples, len(set(map(tuple, cloud.tolist()))))
            for row, cloud in zip(fused, clouds))}
    print(json.dumps(report))
""")


def test_the_kernel_picks_the_same_points_as_the_torch_loop_under_the_interpreter():
    pytest.importorskip("triton")  # installed with torch's Linux x86-64 wheels
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", INTERPRETED], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report) == 5
    assert {name: case["equal"] for name, case in report.items()} == dict.fromkeys(report, True)
    assert all(case["distinct"] for case in report.values())


def test_auto_uses_the_torch_loop_off_cuda(monkeypatch):
    def no_kernel():
        raise AssertionError("the Triton kernel was called for CPU tensors")

    monkeypatch.setattr(fps, "_fused_sampler", no_kernel)
    clouds = torch.randn(2, 300, 3, generator=torch.Generator().manual_seed(1))
    assert farthest_point_sample(clouds, 16).shape == (2, 16)
    assert fps.fps_backend_in_use(torch.device("cpu")) == "torch"


def test_auto_falls_back_once_with_a_warning_when_the_kernel_cannot_run(monkeypatch, caplog):
    """What a GPU host without a working Triton sees: a logged reason, then the torch loop."""
    calls = []

    def broken():
        calls.append(1)
        raise RuntimeError("ptxas not found")

    monkeypatch.setattr(fps, "_fused_sampler", broken)
    monkeypatch.setattr(fps, "_fused_failure", None)
    clouds = torch.randn(1, 200, 3, generator=torch.Generator().manual_seed(2))
    with caplog.at_level(logging.WARNING, logger="cmcr.models.encoders.fps"):
        assert fps._try_fused(clouds, 8, torch.zeros(1, dtype=torch.long)) is None
    assert "ptxas not found" in caplog.text and fps._fused_failure.startswith("RuntimeError")
    assert fps.fps_backend_in_use(torch.device("cuda")) == "torch"
    assert calls == [1]


def test_backend_comes_from_the_environment_and_unknown_names_are_refused(monkeypatch):
    clouds = torch.randn(1, 100, 3, generator=torch.Generator().manual_seed(3))
    monkeypatch.setenv(fps.BACKEND_ENV, "torch")
    assert torch.equal(farthest_point_sample(clouds, 10), farthest_point_sample(clouds, 10, backend="torch"))
    monkeypatch.setenv(fps.BACKEND_ENV, "cuda-magic")
    with pytest.raises(ValueError, match="unknown FPS backend 'cuda-magic'"):
        farthest_point_sample(clouds, 10)


@pytest.mark.parametrize("arch", [80, 90])
def test_the_kernel_compiles_for_ampere_and_hopper_without_fused_multiply_adds(arch):
    """Ahead-of-time compilation to PTX and a cubin with Triton's bundled ptxas needs no GPU, so
    CI catches what the interpreter cannot: code that does not lower for a real target. No `fma`
    in the PTX is what keeps the kernel's rounding identical to the torch loop's."""
    triton = pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from cmcr.models.encoders.fused_fps import BLOCK, COMPILE_OPTIONS, _fps_kernel

    signature = {"planar_ptr": "*fp32", "start_ptr": "*i64", "picked_ptr": "*i64", "nearest_ptr": "*fp32",
                 "num_points": "i32", "num_samples": "i32", "BLOCK": "constexpr"}

    def ptx(fusion: bool) -> str:
        source = ASTSource(fn=_fps_kernel, signature=signature, constexprs={"BLOCK": BLOCK})
        compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32),
                                  options={**COMPILE_OPTIONS, "enable_fp_fusion": fusion})
        assert compiled.asm["cubin"], "ptxas produced no binary"
        return compiled.asm["ptx"]

    assert COMPILE_OPTIONS["enable_fp_fusion"] is False
    assert "fma.rn.f32" not in ptx(fusion=False)
    assert "fma.rn.f32" in ptx(fusion=True)  # the control: contraction would otherwise happen
