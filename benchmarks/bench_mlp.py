"""Time the book's hand-derived MLP step against PyTorch's CPU autograd.

One *step* is the loss and every parameter gradient for one batch:
``MLP.loss_and_grads(X, y)`` here, and in PyTorch ``F.cross_entropy(model(X), y)``
followed by ``.backward()``. Both get the same network, weights and data:

- ReLU, three hidden layers of ``width`` units, 10 classes, inputs of ``width``
  features;
- ``(batch, width)`` in ``(64, 128)``, ``(256, 512)``, ``(1024, 2048)``;
- float32 and float64;
- the same number of threads for numpy's BLAS and for PyTorch.

Runs are interleaved (numpy, PyTorch, numpy, …) after a warm-up, so that a slow
moment of the machine hits both, and the median is reported. Each timed call is
preceded by one untimed call of the same step: both libraries keep their worker
threads spinning for a while after a call, and without it each one is timed while
the other's threads still hold the cores.

The *matmul fraction* compares the step with the matrix products it cannot avoid:
per layer, the forward ``A Wᵀ`` and the backward ``dZ W`` and ``dZᵀ A``, three
GEMMs of the same shapes (the step costs three times the forward GEMM FLOPs).
Timing exactly those GEMMs alone, on the same arrays and in the same run, gives the
best the step could do; ``fraction = t(GEMMs) / t(step)`` is the share of that
rate the step achieves, so everything else (activations, softmax, bias sums,
checks) costs ``1 − fraction``.

*others' CPU* is the share of the machine's CPU time that other processes used
while a row was timed (from ``/proc/stat``, Linux only). Near 0 the row is clean;
on a shared machine both libraries slow down, PyTorch's threads the most, and a
row taken at 0.3 or more says little about either.

PyTorch is optional: without it the comparison is skipped with a message and the
numpy step and the matmul fraction are still measured.

Usage::

    python benchmarks/bench_mlp.py                 # the full table
    python benchmarks/bench_mlp.py --json out.json # also write it as JSON
    python benchmarks/bench_mlp.py --quick         # small sizes only, few runs
    python benchmarks/bench_mlp.py --alone         # blocks instead of interleaving
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

# The thread count must be fixed before numpy loads its BLAS.
_threads = next(
    (a.split("=", 1)[1] for a in sys.argv if a.startswith("--threads=")), None
) or str(os.cpu_count() or 1)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _threads
# OpenBLAS's worker threads keep spinning on the cores for a while after each
# product; interleaved with PyTorch that doubled PyTorch's time at (256, 512).
# 2⁴ cycles, the shortest wait OpenBLAS accepts, lets them sleep at once. This
# helps PyTorch, not numpy, whose own time did not change measurably.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it.

    By default a block of more than 128 KiB is mapped from the kernel when it is
    allocated and unmapped when it is freed, so every new array of a step (each
    ``Z``, ``dZ``, ``dW``: hundreds of KiB to tens of MiB) arrives as fresh pages,
    each zeroed by a page fault. Measured here at (256, 512): about 3,000 page
    faults per numpy step, one third of its time, and how many depends on what ran
    before in the process. Both libraries allocate through this malloc, so the
    setting holds for both. Returns whether it could be applied (glibc only).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
        # 32 MiB is the largest threshold glibc accepts on a 64-bit machine
        return bool(
            libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
            and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
        )
    except (OSError, AttributeError):
        return False


STEADY_MALLOC = keep_freed_memory()

import numpy as np  # noqa: E402

import backprop as bp  # noqa: E402
from backprop.timing import median_time  # noqa: E402

SIZES = [(64, 128), (256, 512), (1024, 2048)]
N_CLASSES = 10
HIDDEN = 3


def make_problem(batch: int, width: int, dtype, seed: int = 0):
    net = bp.MLP(
        [width] + [width] * HIDDEN + [N_CLASSES], "relu", seed=seed, dtype=dtype
    )
    rng = np.random.default_rng(seed + 1)
    X = rng.normal(size=(batch, width)).astype(dtype)
    y = rng.integers(0, N_CLASSES, size=batch)
    return net, X, y


def gemm_step(net, X):
    """The three GEMMs of every layer of a step, and nothing else."""
    cache = []
    A = X
    for W, _ in net.params:
        Z = A @ W.T
        cache.append((A, W, Z))
        A = Z
    for A, W, Z in reversed(cache):
        _ = Z @ W  # dA = dZ W   (Z stands in for dZ: same shape, same cost)
        _ = Z.T @ A  # dW = dZᵀ A


def torch_step_factory(net, X, y, dtype):
    import torch
    import torch.nn.functional as F

    torch_dtype = torch.float32 if dtype == np.float32 else torch.float64
    layers = []
    for k, (W, b) in enumerate(net.params):
        linear = torch.nn.Linear(W.shape[1], W.shape[0], dtype=torch_dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W)))
            linear.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))
        layers.append(linear)
        if k < len(net.params) - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y)

    def step():
        for p in model.parameters():
            p.grad = None
        loss = F.cross_entropy(model(Xt), yt)
        loss.backward()
        return loss

    def grads():
        step()
        out = []
        for linear in layers[::2]:
            out.append((linear.weight.grad.numpy(), linear.bias.grad.numpy()))
        return float(step().item()), out

    return step, grads


def cpu_busy_seconds() -> float | None:
    """CPU seconds spent busy by the whole machine so far (Linux), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:8]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, iowait, irq, softirq = fields
    busy = user + nice + system + iowait + irq + softirq
    return busy / os.sysconf("SC_CLK_TCK")


def bench(batch, width, dtype, runs, use_torch, alone=False):
    """One row of the table. ``others_cpu`` is the share of the machine's CPU
    time that other processes used while the row was timed (0: a quiet
    machine; on a busy one both libraries slow down, PyTorch's threads most)."""
    busy0, own0, wall0 = cpu_busy_seconds(), time.process_time(), time.time()
    net, X, y = make_problem(batch, width, dtype)
    ours = lambda: net.loss_and_grads(X, y)  # noqa: E731
    gemms = lambda: gemm_step(net, X)  # noqa: E731
    row = {"batch": batch, "width": width, "dtype": np.dtype(dtype).name}
    fns = {"numpy": ours, "gemm": gemms}
    if use_torch:
        torch_step, torch_grads = torch_step_factory(net, X, y, dtype)
        fns["torch"] = torch_step
        # Same numbers first: the comparison is only fair between equal results.
        loss, grads = net.loss_and_grads(X, y)
        tloss, tgrads = torch_grads()
        tol = 1e-4 if dtype == np.float32 else 1e-10
        worst = max(
            bp.relative_error(g, t)
            for (dW, db), (tW, tb) in zip(grads, tgrads)
            for g, t in ((dW, tW), (db, tb))
        )
        assert abs(loss - tloss) <= tol * abs(loss) and worst <= tol, (
            loss,
            tloss,
            worst,
        )
        row["max_rel_diff_vs_torch"] = worst
    for fn in fns.values():  # warm-up: first-touch allocations, thread pools
        fn()
    if alone:  # a cross-check: each library in a block of its own, not interleaved
        med = {name: median_time(fn, repeats=runs) for name, fn in fns.items()}
    else:
        times = {name: [] for name in fns}
        for _ in range(runs):
            for name, fn in fns.items():  # interleaved
                # One untimed call first (warmup=1): after the other library ran,
                # its worker threads may still be spinning on the two cores, which
                # slowed the next step up to sevenfold in small sizes.
                times[name].append(median_time(fn, repeats=1, warmup=1))
        med = {name: float(np.median(t)) for name, t in times.items()}
    gemm_flops = sum(3 * 2 * batch * W.shape[0] * W.shape[1] for W, _ in net.params)
    row.update(
        runs=runs,
        numpy_ms=1e3 * med["numpy"],
        gemm_ms=1e3 * med["gemm"],
        numpy_gflops=gemm_flops / med["numpy"] / 1e9,
        matmul_fraction=med["gemm"] / med["numpy"],
    )
    if use_torch:
        row.update(torch_ms=1e3 * med["torch"], ratio=med["numpy"] / med["torch"])
    busy1 = cpu_busy_seconds()
    if busy0 is not None and busy1 is not None:
        others = (busy1 - busy0) - (time.process_time() - own0)
        row["others_cpu"] = max(0.0, others) / (
            (os.cpu_count() or 1) * (time.time() - wall0)
        )
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=int(_threads))
    parser.add_argument("--runs", type=int, default=21, help="counted runs per size")
    parser.add_argument("--runs-largest", type=int, default=7)
    parser.add_argument("--json", help="also write the table to this file")
    parser.add_argument("--quick", action="store_true", help="small sizes, 5 runs")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument(
        "--alone",
        action="store_true",
        help="time each library in a block of its own instead of interleaving",
    )
    args = parser.parse_args(argv)

    use_torch = not args.no_torch
    if use_torch:
        try:
            import torch
        except ImportError:
            print(
                "PyTorch is not installed: the comparison is skipped "
                "(pip install torch to run it); numpy and the matmul fraction still run."
            )
            use_torch = False
        else:
            torch.set_num_threads(args.threads)
    sizes = SIZES[:2] if args.quick else SIZES
    rows = []
    for dtype in (np.float32, np.float64):
        for batch, width in sizes:
            runs = (
                5 if args.quick else (args.runs_largest if width == 2048 else args.runs)
            )
            rows.append(bench(batch, width, dtype, runs, use_torch, args.alone))
            print_row(rows[-1], use_torch)
    env = {
        "timing": "alone" if args.alone else "interleaved",
        "malloc_keeps_freed_memory": STEADY_MALLOC,
        "threads": args.threads,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
    }
    if use_torch:
        import torch

        env["torch"] = torch.__version__
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"environment": env, "rows": rows}, f, indent=2)
    return 0


def print_row(r, use_torch):
    if not hasattr(print_row, "header"):
        print_row.header = True
        cols = "  batch  width  dtype    runs  numpy ms   GEMM ms  matmul frac"
        print(
            cols
            + ("   torch ms  numpy/torch" if use_torch else "")
            + ("  others' CPU" if "others_cpu" in r else "")
        )
    line = (
        f"{r['batch']:7d} {r['width']:6d}  {r['dtype']:7s} {r['runs']:5d} "
        f"{r['numpy_ms']:9.3f} {r['gemm_ms']:9.3f} {r['matmul_fraction']:12.2f}"
    )
    if use_torch:
        line += f" {r['torch_ms']:10.3f} {r['ratio']:12.2f}"
    if "others_cpu" in r:
        line += f" {r['others_cpu']:12.2f}"
    print(line, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
