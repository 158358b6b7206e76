"""Loss micro-benchmark: C2AM against linear + CE and cosine + CE, forward + backward.

    python benchmarks/loss_bench.py [--device auto|cpu|cuda[:N]] [--n 1024 8192]
                                    [--dtypes fp32 bf16] [--repeats 30] [--json out.json]

Variants, all on features [N, D=1024] and classifier [C=1204, D]:
  linear_ce      F.linear with bias + cross-entropy
  cosine_ce      normalised features and weights, s * cos, cross-entropy
  naive_c2am     straightforward eager Eq. 6-7 (acos, cos(theta + m), cross-entropy)
  naive_compile  the same under torch.compile (CUDA only)
  c2am_reference this project, implementation='reference'
  c2am_fused     this project, implementation='fused' (keeps one [N, C] tensor for backward;
                 compiled on CUDA or with C2AM_COMPILE=1, else eager row blocks)
  c2am           this project's default ('auto', which is 'fused')
Timing: median of interleaved repeats (every variant once per round), after warm-up; CUDA
times from synchronised wall clock; peak memory = max allocated during one fwd+bwd minus what
was allocated before (CUDA only); saved = bytes of the distinct tensors autograd keeps from
forward for backward, inputs excluded (any device: what a fwd+bwd holds between the two).
Ratios are against cosine_ce and linear_ce of the same run.
"""
from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from projects.c2am.c2am import ALPHA, SCALE, c2am_loss  # noqa: E402
from projects.c2am.cli import (  # noqa: E402
    nonnegative_int,
    positive_int,
    resolve_device,
    run_cli,
    torch_device,
)
from projects.c2am.outputs import check_output_files, dumps_json, write_atomic  # noqa: E402

S, D, C = SCALE, 1024, 1204


def linear_ce(x, w, b, y):
    return F.cross_entropy(F.linear(x, w, b), y)


def cosine_ce(x, w, b, y):
    return F.cross_entropy(S * F.linear(F.normalize(x, dim=1), F.normalize(w, dim=1)), y)


def naive_c2am(x, w, b, y):
    cos = F.linear(F.normalize(x, dim=1), F.normalize(w, dim=1)).float()
    norm = w.detach().float().norm(dim=1)
    m = (ALPHA / math.pi * torch.log(norm[y][:, None] / norm[None, :])).clamp_min(0)
    m = m.scatter(1, y[:, None], 0.0)
    theta = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    return F.cross_entropy(S * torch.cos(theta + m), y)


def c2am_reference(x, w, b, y):
    return c2am_loss(x, w, y, scale=S, alpha=ALPHA, implementation='reference')


def c2am_fused(x, w, b, y):
    return c2am_loss(x, w, y, scale=S, alpha=ALPHA, implementation='fused')


def c2am_auto(x, w, b, y):
    return c2am_loss(x, w, y, scale=S, alpha=ALPHA)


def make_inputs(n, device, seed=0):
    g = torch.Generator(device='cpu').manual_seed(seed)
    x = torch.randn(n, D, generator=g).to(device).requires_grad_()
    w = (torch.randn(C, D, generator=g) * 0.01 *
         torch.logspace(-0.5, 0.5, C)[:, None]).to(device).requires_grad_()
    b = torch.zeros(C, device=device, requires_grad=True)
    y = torch.randint(0, C, (n,), generator=g).to(device)
    return x, w, b, y


def step(fn, inputs, autocast_dtype, device, backward=True):
    x, w, b, y = inputs
    for t in (x, w, b):
        t.grad = None
    with torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                        enabled=autocast_dtype is not None):
        loss = fn(x, w, b, y)
    if backward:
        loss.backward()
    return loss


def saved_mib(fn, inputs, autocast_dtype, device) -> float:
    """MiB of the distinct storages saved for backward by one forward (inputs excluded)."""
    x, w, b, y = inputs
    leaves = {t.untyped_storage().data_ptr() for t in (x, w, b, y)}
    saved = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in leaves:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = step(fn, inputs, autocast_dtype, device, backward=False)
    loss.backward()
    return sum(saved.values()) / 2**20


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def measure(variants, n, dtype_name, device, repeats, warmup):
    autocast_dtype = {'fp32': None, 'bf16': torch.bfloat16}[dtype_name]
    inputs = make_inputs(n, device)
    times = {k: [] for k in variants}
    peak, saved = {}, {}
    for name, fn in variants.items():  # warm-up (and compile) + memory
        for _ in range(warmup):
            step(fn, inputs, autocast_dtype, device)
        saved[name] = saved_mib(fn, inputs, autocast_dtype, device)
        sync(device)
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            step(fn, inputs, autocast_dtype, device)
            sync(device)
            peak[name] = (torch.cuda.max_memory_allocated() - before) / 2**20
    for _ in range(repeats):
        for name, fn in variants.items():
            sync(device)
            t0 = time.perf_counter()
            step(fn, inputs, autocast_dtype, device)
            sync(device)
            times[name].append(time.perf_counter() - t0)
    ref = {k: step(fn, inputs, autocast_dtype, device).item() for k, fn in variants.items()}
    return {name: dict(us=1e6 * statistics.median(ts), peak_mib=peak.get(name),
                       saved_mib=saved[name], loss=ref[name])
            for name, ts in times.items()}


def check_equivalence(device, n=2048) -> dict:
    """Max relative difference of the fused (default) path against the reference path."""
    out = {}
    for dtype_name, ac in (('fp32', None), ('bf16', torch.bfloat16)):
        grads = {}
        for impl in ('reference', 'fused'):
            x, w, b, y = make_inputs(n, device, seed=1)
            with torch.autocast(device.type, dtype=ac or torch.float32, enabled=ac is not None):
                loss = c2am_loss(x, w, y, scale=S, alpha=ALPHA, implementation=impl)
            loss.backward()
            grads[impl] = (loss.detach(), x.grad, w.grad)
        out[dtype_name] = max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))
                              for a, b in zip(grads['fused'], grads['reference']))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', type=torch_device, default='auto',
                   help='auto (a GPU when present), cpu, cuda or cuda:N')
    p.add_argument('--n', type=positive_int, nargs='+', default=[1024, 8192])
    p.add_argument('--dtypes', nargs='+', choices=['fp32', 'bf16'], default=['fp32', 'bf16'])
    p.add_argument('--repeats', type=positive_int, default=30)
    p.add_argument('--warmup', type=nonnegative_int, default=3)
    p.add_argument('--json', type=Path, help='also write the results here')
    p.add_argument('--force', action='store_true', help='overwrite --json')
    args = p.parse_args(argv)
    if args.json:
        check_output_files([args.json], force=args.force)
    device = resolve_device(args.device)
    variants = dict(linear_ce=linear_ce, cosine_ce=cosine_ce, naive_c2am=naive_c2am)
    if device.type == 'cuda':
        variants['naive_compile'] = torch.compile(naive_c2am, dynamic=False)
    variants.update(c2am_reference=c2am_reference, c2am_fused=c2am_fused, c2am=c2am_auto)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() \
        or platform.machine()
    header = (f'device {name}, torch {torch.__version__}, {time.strftime("%Y-%m-%d")}, '
              f'D={D}, C={C}, median of {args.repeats} interleaved repeats')
    print(header)
    check = check_equivalence(device)
    print('fused vs reference, max relative difference (loss, d/dx, d/dW): '
          + ', '.join(f'{k} {v:.2e}' for k, v in check.items()))
    results = []
    for dtype_name in args.dtypes:
        for n in args.n:
            r = measure(variants, n, dtype_name, device, args.repeats, args.warmup)
            results.append(dict(n=n, dtype=dtype_name, variants=r))
            print(f'\nN={n}, {dtype_name}')
            print(f"{'variant':<15}{'time us':>10}{'peak MiB':>10}{'saved MiB':>10}"
                  f"{'/cosine':>9}{'/linear':>9}{'loss':>10}")
            for k, v in r.items():
                mem = f"{v['peak_mib']:.0f}" if v['peak_mib'] is not None else 'n/a'
                ratio_cos = v['us'] / r['cosine_ce']['us']
                ratio_lin = v['us'] / r['linear_ce']['us']
                print(f"{k:<15}{v['us']:>10.0f}{mem:>10}{v['saved_mib']:>10.1f}"
                      f"{ratio_cos:>9.2f}{ratio_lin:>9.2f}{v['loss']:>10.4f}")
            if r['c2am']['peak_mib'] is not None:
                print(f"c2am peak memory / cosine_ce: "
                      f"{r['c2am']['peak_mib'] / r['cosine_ce']['peak_mib']:.2f}")
            print(f"c2am / cosine_ce: time {r['c2am']['us'] / r['cosine_ce']['us']:.2f}, saved "
                  f"for backward {r['c2am']['saved_mib'] / r['cosine_ce']['saved_mib']:.2f}")
    if args.json:
        write_atomic(args.json, dumps_json(dict(header=header, equivalence=check,
                                                results=results), indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
