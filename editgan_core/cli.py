"""Command line: ``python -m editgan_core {generate,info,convert,list} ...``.

Arguments are parsed only in :func:`main`; every command is a thin wrapper over library calls.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import List, Optional, Sequence

EPILOG = """examples:
  python -m editgan_core generate --model toyfaces --seeds 0-7 --truncation 0.7 --out out/
  python -m editgan_core generate --model hf://hysts/StyleGAN2/models/stylegan2-ffhq-1024x1024.pkl --seeds 42
  python -m editgan_core generate --model ./stylegan2-cifar10-32x32.pkl --seeds 0-3 --class 5
  python -m editgan_core info ./network-snapshot-000500.pkl
  python -m editgan_core convert ./stylegan2-car-config-f.pt ./car-native/
  python -m editgan_core list
"""


def parse_seeds(text: str) -> List[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11]."""
    seeds: List[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if b < a:
                raise argparse.ArgumentTypeError(f"seed range {part!r} is descending")
            seeds.extend(range(a, b + 1))
        elif part.isdigit():
            seeds.append(int(part))
        else:
            raise argparse.ArgumentTypeError(f"bad seed {part!r}: use numbers and ranges like 0-7,12")
    if not seeds:
        raise argparse.ArgumentTypeError("no seeds given")
    if any(s >= 2 ** 32 for s in seeds):
        raise argparse.ArgumentTypeError("seeds must be below 2**32 (numpy RandomState)")
    return seeds


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda asked for, but no CUDA device is available")
    return torch.device(name)


def cmd_generate(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from .generator import images_to_uint8
    from .hub import load_model

    loaded = load_model(args.model, key=args.key)
    for note in loaded.notes:
        print(f"note: {note}", file=sys.stderr)
    device = _device(args.device)
    G = loaded.G.to(device)
    cfg = G.cfg
    label = None
    if cfg.c_dim:
        if args.class_idx is None:
            raise SystemExit(f"error: this generator is conditional ({cfg.c_dim} classes): pass --class")
        if not 0 <= args.class_idx < cfg.c_dim:
            raise SystemExit(f"error: --class must be in [0, {cfg.c_dim - 1}]")
        label = torch.zeros([1, cfg.c_dim], device=device)
        label[:, args.class_idx] = 1
    elif args.class_idx is not None:
        print("note: --class ignored: the generator is unconditional", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        for i, seed in enumerate(args.seeds):
            # Exactly NVIDIA generate.py: float64 normals from RandomState(seed), cast in the mapping.
            z = torch.from_numpy(np.random.RandomState(seed).randn(1, cfg.z_dim)).to(device)
            img = G(z.float(), label, truncation_psi=args.truncation, truncation_cutoff=args.truncation_cutoff,
                    noise_mode=args.noise_mode)
            arr = images_to_uint8(img)[0].cpu().numpy()
            path = out / f"seed{seed:04d}.png"
            Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr, "L" if arr.shape[2] == 1 else "RGB").save(path)
            print(f"[{i + 1}/{len(args.seeds)}] {path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .hub import load_model

    loaded = load_model(args.model, key=args.key)
    cfg = loaded.config
    info = {
        "path": loaded.path, "format": loaded.format, "sha256": loaded.sha256,
        "resolution": cfg.img_resolution, "num_ws": cfg.num_ws, "w_dim": cfg.w_dim, "z_dim": cfg.z_dim,
        "c_dim": cfg.c_dim, "parameters": loaded.G.num_parameters(), "config": cfg.to_dict(), "notes": loaded.notes,
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"path        {info['path']}")
    print(f"format      {info['format']}")
    print(f"sha256      {info['sha256']}")
    print(f"resolution  {cfg.img_resolution}x{cfg.img_resolution}, {cfg.img_channels} channels")
    print(f"latents     z {cfg.z_dim}, c {cfg.c_dim}, w {cfg.w_dim}, num_ws {cfg.num_ws}")
    print(f"parameters  {info['parameters']:,}")
    print("config      " + json.dumps(cfg.to_dict(), sort_keys=True))
    for note in loaded.notes:
        print(f"note        {note}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .checkpoints import convert
    from .hub import resolve

    r = resolve(args.src)
    out = convert(r.path, args.dst, key=args.key)
    print(f"wrote {out}/config.json and {out}/model.safetensors")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .registry import REGISTRY

    for spec in REGISTRY.values():
        where = f"checkpoints/{spec.local_dir}" if spec.local_dir else spec.hub_ref
        print(f"{spec.name:22s} {spec.format:14s} {spec.resolution:5d}px  {where}\n{'':22s} {spec.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .registry import DEFAULT_MODEL

    fmt = argparse.ArgumentDefaultsHelpFormatter
    p = argparse.ArgumentParser(prog="python -m editgan_core", description="EditGAN Studio core tools.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="render one PNG per seed", formatter_class=fmt)
    g.add_argument("--model", default=DEFAULT_MODEL, help="registry name, local path or hf://org/repo/file[@rev]")
    g.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-7"), help="e.g. 0-7 or 1,5,9-12")
    g.add_argument("--truncation", type=float, default=1.0, help="truncation psi")
    g.add_argument("--truncation-cutoff", type=int, default=None, help="truncate only the first N W+ layers")
    g.add_argument("--class", dest="class_idx", type=int, default=None, help="class index (conditional models)")
    g.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    g.add_argument("--out", default="out", help="output folder")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    g.add_argument("--key", default=None, help="network to use from an NVIDIA snapshot (default G_ema)")
    g.set_defaults(func=cmd_generate)

    i = sub.add_parser("info", help="describe a checkpoint", formatter_class=fmt)
    i.add_argument("model", help="registry name, local path or hf:// reference")
    i.add_argument("--key", default=None, help="network to use from an NVIDIA snapshot (default G_ema)")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=cmd_info)

    c = sub.add_parser("convert", help="convert any supported checkpoint to the native format", formatter_class=fmt)
    c.add_argument("src", help="registry name, local path or hf:// reference")
    c.add_argument("dst", help="output folder (config.json + model.safetensors)")
    c.add_argument("--key", default=None, help="network to use from an NVIDIA snapshot (default G_ema)")
    c.set_defaults(func=cmd_convert)

    ls = sub.add_parser("list", help="list the model registry")
    ls.set_defaults(func=cmd_list)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .errors import EditGANError
    from .runtime import tune_allocator

    args = build_parser().parse_args(argv)
    tune_allocator()
    try:
        return args.func(args)
    except EditGANError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
