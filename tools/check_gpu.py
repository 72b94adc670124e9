"""GPU checks of the geometry, DiT-3D and channel-flow code (a script for machines with CUDA; CI has none).

Checks that CUDA results equal the CPU ones (voxelize/devoxelize, Chamfer, Sinkhorn+auction EMD against
exact, a DiT-S/4 forward in float32, one time unit of the float64 channel solver), that bf16 autocast stays
close to float32, and that a bf16 training step and every sampler run; prints timings. Exits non-zero
when a check fails.

    python tools/check_gpu.py
"""

from __future__ import annotations

import math
import sys
import time

import torch

from sciml.diffusion import GaussianDiffusion, TaylorCache
from sciml.geometry import chamfer_distance, devoxelize, earth_movers_distance, voxelize
from sciml.models.dit3d import DiT3D
from sciml.physics.channel import ChannelFlow

failures: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}")
    if not ok:
        failures.append(name)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def geometry() -> None:
    torch.manual_seed(6)
    points, features = torch.randn(2, 500, 3), torch.randn(2, 500, 4)
    grid, coords = voxelize(features, points, 16)
    grid_gpu, coords_gpu = voxelize(features.cuda(), points.cuda(), 16)
    # float32 tolerances of torch.testing.assert_close: scatter sums and fused multiply-adds differ in order
    close = dict(rtol=1.3e-6, atol=1e-5)
    check(
        "voxelize",
        torch.allclose(grid_gpu.cpu(), grid, **close) and torch.allclose(coords_gpu.cpu(), coords),
    )
    check(
        "devoxelize",
        torch.allclose(devoxelize(grid_gpu, coords_gpu).cpu(), devoxelize(grid, coords), **close),
    )
    a, b = torch.randn(4, 300, 3), torch.randn(4, 300, 3)
    check(
        "chamfer",
        torch.allclose(chamfer_distance(a.cuda(), b.cuda(), backend="torch").cpu(), chamfer_distance(a, b)),
    )
    exact = earth_movers_distance(a, b, method="exact")
    approx = earth_movers_distance(a.cuda(), b.cuda(), method="sinkhorn").cpu()
    error = float(((approx - exact) / exact).abs().max())
    check("emd sinkhorn+auction vs exact", error < 2e-3, f"max relative error {error:.1e}")


def dit3d() -> None:
    torch.manual_seed(0)
    net = DiT3D(size="S", patch_size=4, voxel_size=32, num_classes=1)
    with torch.no_grad():  # wake the zero-initialised adaLN and output layers so every part acts
        for parameter in net.parameters():
            if parameter.requires_grad and not parameter.any():
                parameter.normal_(0, 0.02)
    x, t = torch.randn(4, 2048, 3), torch.randint(0, 1000, (4,))
    y = torch.zeros(4, dtype=torch.long)
    torch.backends.cudnn.allow_tf32 = False  # a float32 comparison: no TF32 in the patch-embedding Conv3d
    with torch.no_grad():
        cpu = net(x, t, y)
        net = net.cuda()
        gpu = net(x.cuda(), t.cuda(), y.cuda()).float().cpu()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = net(x.cuda(), t.cuda(), y.cuda()).float().cpu()
    torch.backends.cudnn.allow_tf32 = True
    check("DiT-S/4 forward, cuda vs cpu", relative(gpu, cpu) < 1e-4, f"rel L2 {relative(gpu, cpu):.1e}")
    check(
        "DiT-S/4 forward, bf16 autocast vs fp32",
        relative(bf16, gpu) < 2e-2,
        f"rel L2 {relative(bf16, gpu):.1e}",
    )

    diffusion = GaussianDiffusion.from_schedule()
    optimizer = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    xb = torch.randn(16, 2048, 3, device="cuda")
    yb = torch.zeros(16, dtype=torch.long, device="cuda")
    for step in range(13):
        if step == 3:
            torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = diffusion.training_loss(net, xb, yb).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.cuda.synchronize()
    step_time = (time.perf_counter() - start) / 10
    check("bf16 training step, batch 16 x 2048", bool(torch.isfinite(loss)), f"{step_time * 1e3:.0f} ms")
    net.eval()
    for sampler, steps, cache in (
        ("ddpm", None, None),
        ("ddim", 25, None),
        ("dpmpp_2m", 25, None),
        ("dpmpp_2m", 25, TaylorCache(interval=3)),
    ):
        generator = torch.Generator(device="cuda").manual_seed(0)
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = diffusion.sample(net, (16, 2048, 3), yb, sampler, steps, generator=generator, cache=cache)
        torch.cuda.synchronize()
        label = f"sample {sampler}" + (f" {steps} steps" if steps else "") + (" + cache" if cache else "")
        check(label, bool(torch.isfinite(out).all()), f"{time.perf_counter() - start:.2f} s for 16 shapes")


def channel() -> None:
    ends = []
    for device in ("cpu", "cuda"):
        solver = ChannelFlow((12, 25, 12), nu=1 / 200, lengths=(2 * math.pi, math.pi), device=device)
        start = solver.perturbed_state(2, 0.2, generator=torch.Generator().manual_seed(0))
        ends.append(solver.advance(start, 1.0, dt=0.05)[0].phi)
    cpu, gpu = ends
    difference = float((gpu.cpu() - cpu).abs().max())
    detail = f"max |diff| {difference:.2e}"
    check("channel solver, float64: CUDA equals CPU", gpu.is_cuda and difference <= 1e-12, detail)


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    print(torch.cuda.get_device_name())
    geometry()
    dit3d()
    channel()
    print(f"{len(failures)} check(s) failed" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
