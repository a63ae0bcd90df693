"""Commands about models: generate, info, convert, list."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..loaders.checkpoints import convert
from ..loaders.hub import resolve
from ..loaders.registry import CHECKPOINTS_DIR, PARSERS, REGISTRY
from ..models.generator import generate
from .common import INDEX, PSI, about, class_index, common, load, parse_seeds, save_png


def cmd_generate(args: argparse.Namespace) -> int:
    loaded = load(args, key=args.key)
    G = loaded.G
    class_idx = class_index(G, args.model, args.class_idx)
    psi = {} if args.truncation is None else {"truncation_psi": args.truncation}   # default: generate()'s
    out = Path(args.out)
    for i, seed in enumerate(args.seeds):   # one seed at a time: any number of seeds in constant memory
        gen = generate(G, [seed], class_idx=class_idx, truncation_cutoff=args.truncation_cutoff,
                       noise_mode=args.noise_mode, **psi)
        path = save_png(out / f"seed{seed:04d}.png", gen.uint8()[0].cpu().numpy())
        print(f"[{i + 1}/{len(args.seeds)}] {path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    loaded = load(argparse.Namespace(model=args.model, device="cpu"), key=args.key)
    cfg = loaded.config
    info = {
        "path": str(loaded.path), "format": loaded.format, "sha256": loaded.sha256,
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
    with about(args.src):
        r = resolve(args.src)
        out = convert(r.path, args.dst, key=args.key)
    print(f"wrote {out}/config.json and {out}/model.safetensors")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for spec in REGISTRY.values():
        where = str(CHECKPOINTS_DIR / spec.local_dir) if spec.local_dir else spec.hub_ref
        print(f"{spec.name:22s} {spec.format:14s} {spec.resolution:5d}px  {where}\n{'':22s} {spec.description}")
    print("\nparsers (label --labeler NAME):")
    for p in PARSERS.values():
        where = str(CHECKPOINTS_DIR / p.local_dir) if p.local_dir else p.hub_ref
        made_for = f", for {', '.join(p.models)}" if p.models else ""
        print(f"{p.name:22s} {p.domain + made_for:22s} {where}\n{'':22s} {p.description} ({p.license})")
    return 0


def add_parsers(sub, fmt) -> None:
    """The generate, info, convert, list subcommands, their options beside the code above."""
    g = sub.add_parser("generate", help="render one PNG per seed", formatter_class=fmt)
    common(g)
    g.add_argument("--seeds", type=parse_seeds, default="0-7", help="e.g. 0-7 or 1,5,9-12")
    g.add_argument("--truncation", type=PSI, default=None,
                   help="truncation psi (default: no truncation, psi 1, as NVIDIA's generate.py)")
    g.add_argument("--truncation-cutoff", type=INDEX, default=None, help="truncate only the first N W+ layers")
    g.add_argument("--class", dest="class_idx", type=INDEX, default=None, help="class index (conditional models)")
    g.add_argument("--noise-mode", choices=["const", "random", "none"], default="const")
    g.add_argument("--out", default="out", help="output folder (seedNNNN.png)")
    g.add_argument("--key", default=None, help="network to use from an NVIDIA snapshot (default G_ema)")
    g.set_defaults(func=cmd_generate, writes="folder")

    i = sub.add_parser("info", help="describe a checkpoint", formatter_class=fmt)
    i.add_argument("model", help="registry name, local path or hf:// reference")
    i.add_argument("--key", default=None, help="network to use from an NVIDIA snapshot (default G_ema)")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=cmd_info, writes=None)

    c = sub.add_parser("convert", help="convert any supported checkpoint to the native format", formatter_class=fmt)
    c.add_argument("src", help="registry name, local path or hf:// reference")
    c.add_argument("dst", help="output folder (config.json + model.safetensors)")
    c.add_argument("--key", default=None, help="network to use from an NVIDIA snapshot (default G_ema)")
    c.set_defaults(func=cmd_convert, writes="dst")

    ls = sub.add_parser("list", help="list the model registry")
    ls.set_defaults(func=cmd_list, writes=None)
