"""Command line: ``python -m editgan_core {generate,info,convert,list,embed,segment,train-branch,edit,apply} ...``.

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
  python -m editgan_core embed photo.jpg --out out/embed          # -> photo.latent.safetensors + recon
  python -m editgan_core segment out/embed/photo.latent.safetensors --out out/photo_mask.png
  python -m editgan_core train-branch annotated/ --out my-branch.safetensors
  python -m editgan_core edit face.latent.safetensors edited_mask.png --name smile --out vectors/
  python -m editgan_core apply vectors/smile.safetensors:1.5 --inputs photos/ --out out/smiling
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


def _load_for_editing(args):
    from .hub import load_model

    loaded = load_model(args.model)
    for note in loaded.notes:
        print(f"note: {note}", file=sys.stderr)
    loaded.G.to(_device(args.device)).eval()
    return loaded


def _encoder_for(loaded, choice: str):
    from .assets import ENCODER_NAME, companion, model_identity
    from .embed import load_encoder

    if choice == "none":
        return None
    path = companion(loaded, ENCODER_NAME) if choice == "auto" else Path(choice)
    if path is None:
        print("note: this model has no encoder; starting from the average latent", file=sys.stderr)
        return None
    return load_encoder(path, expect_generator=model_identity(loaded)).to(loaded.G.w_avg.device)


def _embed_images(loaded, paths, args):
    from .assets import model_dir
    from .embed import embed
    from .imageio import prepare_image
    from .perceptual import perceptual_for

    G = loaded.G
    enc = _encoder_for(loaded, args.encoder)
    dist = perceptual_for(model_dir(loaded), args.perceptual)
    for path in paths:
        prep = prepare_image(path, G.img_resolution, fit=args.fit)
        print(f"{Path(path).name}: {prep.note}", file=sys.stderr)

        def progress(step, steps, loss, name=Path(path).name):
            if step == steps or step % max(1, steps // 10) == 0:
                print(f"  {name}: step {step}/{steps} loss {loss:.4f}", file=sys.stderr)

        res = embed(G, prep.tensor.to(G.w_avg.device), steps=args.steps, encoder=enc, distance=dist,
                    progress=progress)
        yield path, prep, res, dist.name


def cmd_embed(args: argparse.Namespace) -> int:
    from PIL import Image

    from .assets import model_identity
    from .generator import images_to_uint8
    from .latents import save_latent

    loaded = _load_for_editing(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path, prep, res, dname in _embed_images(loaded, args.images, args):
        stem = Path(path).stem
        save_latent(out / f"{stem}.latent.safetensors", res.ws, model_identity(loaded),
                    {"source": Path(path).name, "steps": res.steps, "psnr": round(res.psnr.item(), 2),
                     "perceptual": dname, "prepare": prep.note})
        Image.fromarray(images_to_uint8(res.image)[0].cpu().numpy()).save(out / f"{stem}_recon.png")
        Image.fromarray(prep.array).save(out / f"{stem}_input.png")
        print(f"{out / (stem + '.latent.safetensors')}  PSNR {res.psnr.item():.2f} dB  ({res.seconds:.1f} s)")
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    import torch
    from PIL import Image

    from .assets import BRANCH_NAME, companion, model_identity
    from .latents import load_latent
    from .masks import encode_mask
    from .segbranch import load_branch

    loaded = _load_for_editing(args)
    ident = model_identity(loaded)
    bpath = Path(args.branch) if args.branch else companion(loaded, BRANCH_NAME)
    if bpath is None:
        raise SystemExit("error: this model has no segmentation branch; pass --branch or train one (train-branch)")
    branch = load_branch(bpath, expect_generator=ident).to(loaded.G.w_avg.device)
    src = Path(args.input)
    if src.name.endswith(".safetensors") or src.suffix == ".npy":
        ws, _ = load_latent(src, expect_generator=ident)
    else:
        ws = next(iter(_embed_images(loaded, [src], args)))[2].ws
    with torch.no_grad():
        _, feats = loaded.G.synthesis(ws.to(loaded.G.w_avg.device), return_features=True)
    labels = branch.predict(feats)[0].cpu().numpy()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(encode_mask(labels, branch.cfg.palette)).save(out)
    present = [branch.cfg.class_names[c] for c in sorted(set(labels.ravel().tolist()))]
    print(f"{out}: classes {', '.join(present)}")
    return 0


def cmd_train_branch(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from .assets import default_classes, model_identity
    from .fewshot import load_annotated_folder, train_branch
    from .segbranch import save_branch

    loaded = _load_for_editing(args)
    G = loaded.G
    if args.classes:
        spec = json.loads(Path(args.classes).read_text())
        names = [c["name"] for c in spec]
        palette = [tuple(c["color"]) for c in spec]
    else:
        names, palette = default_classes(loaded)
    _, preps, masks, notes = load_annotated_folder(args.folder, G.img_resolution, np.array(palette, np.uint8))
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    from .assets import model_dir
    from .embed import embed
    from .perceptual import perceptual_for

    enc = _encoder_for(loaded, args.encoder)
    target = torch.cat([p.tensor for p in preps]).to(G.w_avg.device)
    res = embed(G, target, steps=args.steps, encoder=enc, distance=perceptual_for(model_dir(loaded), args.perceptual))
    print(f"embedded {len(preps)} images: mean PSNR {res.psnr.mean().item():.2f} dB", file=sys.stderr)
    branch, report = train_branch(G, res.ws, masks, names, palette, generator_id=model_identity(loaded),
                                  max_steps=args.max_steps, progress=lambda r: print(json.dumps(r), file=sys.stderr))
    save_branch(branch, args.out, extra={"training": {"images": len(preps), "val_miou": report.val_miou,
                                                      "steps": report.steps, "best_step": report.best_step}})
    print(f"{args.out}: validation mIoU {report.val_miou:.4f} ({report.train_images} train / "
          f"{report.val_images} validation images, best step {report.best_step})")
    return 0


def _branch_for(loaded, path, ident):
    from .assets import BRANCH_NAME, companion
    from .segbranch import load_branch

    bpath = Path(path) if path else companion(loaded, BRANCH_NAME)
    if bpath is None:
        raise SystemExit("error: this model has no segmentation branch; pass --branch or train one (train-branch)")
    return load_branch(bpath, expect_generator=ident).to(loaded.G.w_avg.device)


def cmd_edit(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from .assets import model_identity
    from .editing import edit_from_mask
    from .generator import images_to_uint8
    from .imageio import open_image
    from .latents import load_latent
    from .masks import decode_mask, encode_mask
    from .vectors import EditVector, save_vector

    loaded = _load_for_editing(args)
    ident = model_identity(loaded)
    branch = _branch_for(loaded, args.branch, ident)
    ws, _ = load_latent(args.latent, expect_generator=ident)
    R = loaded.G.img_resolution
    m = open_image(args.mask).convert("RGBA")
    if m.size != (R, R):
        raise SystemExit(f"error: the mask is {m.size[0]}x{m.size[1]}; this model needs {R}x{R}")
    arr = np.asarray(m)
    labels, msg = decode_mask(arr[..., :3], branch.cfg.palette, alpha=arr[..., 3])
    if msg:
        print(f"note: {msg}", file=sys.stderr)

    def progress(step, steps, loss, img):
        if step == steps or step % max(1, steps // 10) == 0:
            print(f"  step {step}/{steps} loss {loss:.4f}", file=sys.stderr)

    res = edit_from_mask(loaded.G, branch, ws[:1], labels, steps=args.steps, progress=progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    with torch.no_grad():
        before = images_to_uint8(loaded.G.synthesis(ws[:1].to(loaded.G.w_avg.device)))[0].cpu().numpy()
    after = images_to_uint8(res.image)[0].cpu().numpy()
    names = branch.cfg.class_names
    vec = EditVector(name=args.name, delta=res.delta.cpu(), generator=ident, classes=[names[c] for c in res.classes],
                     thumb_before=before, thumb_after=after, extra={"steps": res.steps, "loss": res.loss})
    path = save_vector(vec, out)
    Image.fromarray(after).save(out / f"{args.name}_edited.png")
    Image.fromarray(encode_mask(res.labels, branch.cfg.palette)).save(out / f"{args.name}_edited_mask.png")
    print(f"{path}  classes {', '.join(vec.classes)}  ({res.steps} steps, {res.seconds:.1f} s)")
    return 0


def _parse_vector_arg(text: str):
    path, _, scale = text.rpartition(":")
    if not path or not scale:
        return text, 1.0
    try:
        return path, float(scale)
    except ValueError:
        return text, 1.0


def cmd_apply(args: argparse.Namespace) -> int:
    from PIL import Image

    from .assets import model_identity
    from .generator import images_to_uint8
    from .latents import load_latent
    from .vectors import apply_vectors, load_vector

    loaded = _load_for_editing(args)
    ident = model_identity(loaded)
    G = loaded.G
    pairs = [(load_vector(p, expect_generator=ident), s) for p, s in map(_parse_vector_arg, args.vectors)]
    branch = _branch_for(loaded, args.branch, ident) if args.refine else None
    src = Path(args.inputs)
    files = sorted(src.iterdir()) if src.is_dir() else [src]
    latents = [f for f in files if f.name.endswith(".safetensors") or f.suffix == ".npy"]
    images = [f for f in files if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp")]
    if not latents and not images:
        raise SystemExit(f"error: no latents (.safetensors/.npy) or images in {src}")
    jobs = [(f.name.split(".")[0], load_latent(f, expect_generator=ident)[0]) for f in latents]
    if images:
        jobs += [(Path(p).stem, r.ws) for p, _, r, _ in _embed_images(loaded, images, args)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, (name, ws) in enumerate(jobs):
        res = apply_vectors(G, ws[:1], pairs, branch=branch, refine_steps=args.refine)
        Image.fromarray(images_to_uint8(res.image)[0].cpu().numpy()).save(out / f"{name}.png")
        print(f"[{i + 1}/{len(jobs)}] {out / (name + '.png')}  ({1000 * res.seconds:.0f} ms)")
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

    def editing_args(q, steps=True):
        q.add_argument("--model", default=DEFAULT_MODEL, help="registry name, local path or hf:// reference")
        q.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
        q.add_argument("--encoder", default="auto", help="encoder file, 'auto' (the model's) or 'none'")
        q.add_argument("--perceptual", default="auto", choices=["auto", "lpips", "discriminator", "fallback"],
                       help="perceptual term of the embedding loss ('lpips' downloads VGG16 weights once)")
        q.add_argument("--fit", default="crop", choices=["crop", "pad"], help="how to make the image square")
        q.add_argument("--steps", type=int, default=100, help="optimisation steps after the encoder")

    e = sub.add_parser("embed", help="embed images into W+ (latent file + reconstruction)", formatter_class=fmt)
    e.add_argument("images", nargs="+", help="image files (any size or mode)")
    e.add_argument("--out", default="out/embed", help="output folder")
    editing_args(e)
    e.set_defaults(func=cmd_embed)

    s = sub.add_parser("segment", help="segment an image or latent into a palette mask PNG", formatter_class=fmt)
    s.add_argument("input", help="an image (embedded first) or a latent file (.safetensors / .npy)")
    s.add_argument("--out", default="out/mask.png", help="mask PNG to write")
    s.add_argument("--branch", default=None, help="branch file (default: the model's branch.safetensors)")
    editing_args(s)
    s.set_defaults(func=cmd_segment)

    t = sub.add_parser("train-branch", help="train a segmentation branch from a folder of image/mask pairs",
                       formatter_class=fmt)
    t.add_argument("folder", help="NAME.png + NAME_mask.png pairs (or masks/NAME.png)")
    t.add_argument("--out", required=True, help="branch file to write (.safetensors)")
    t.add_argument("--classes", default=None, help='JSON list of {"name": ..., "color": [r, g, b]} (default: '
                   "the model's classes, else the ToyFaces parts)")
    t.add_argument("--max-steps", type=int, default=1500)
    editing_args(t)
    t.set_defaults(func=cmd_train_branch)

    ed = sub.add_parser("edit", help="mask edit: latent + repainted mask PNG -> editing vector + image",
                        formatter_class=fmt)
    ed.add_argument("latent", help="latent file of the image to edit (from embed)")
    ed.add_argument("mask", help="the repainted segmentation, a PNG in the branch's palette at model resolution")
    ed.add_argument("--name", required=True, help="name of the editing vector")
    ed.add_argument("--out", default="out/vectors", help="vector library folder")
    ed.add_argument("--branch", default=None, help="branch file (default: the model's)")
    editing_args(ed)
    ed.set_defaults(func=cmd_edit)

    ap = sub.add_parser("apply", help="apply editing vectors (PATH[:SCALE] ...) to a folder of latents or images",
                        formatter_class=fmt)
    ap.add_argument("vectors", nargs="+", help="vector files, each optionally with :scale (default 1)")
    ap.add_argument("--inputs", required=True, help="a folder (or one file) of latents or images")
    ap.add_argument("--out", default="out/applied", help="output folder")
    ap.add_argument("--refine", type=int, default=0, choices=[0, 10, 30], help="refinement steps")
    ap.add_argument("--branch", default=None, help="branch file for refinement (default: the model's)")
    editing_args(ap)
    ap.set_defaults(func=cmd_apply)
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
