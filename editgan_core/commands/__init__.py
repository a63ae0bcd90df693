"""Command line: ``editgan {generate,info,convert,list,embed,segment,label,train-branch,edit,apply} ...``
(the same as ``python -m editgan_core ...``).

Arguments are parsed only in :func:`main`; every command is a thin wrapper over the pipeline functions of
:mod:`editgan_core` (``generate``, ``segment``, ``embed``, ``train_branch_on_images``, ``edit_from_mask``,
``apply_vectors``, ``label_images``) and takes its defaults from :mod:`editgan_core.settings`.

Every error a user can cause exits with status 2 and one line ``error: ...`` that names the file involved; a
command that fails leaves no empty output folder behind (folders are made when the first file is written, and
one the command made is removed again if it is still empty).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from .. import __version__
from ..errors import EditGANError
from ..runtime import configure_threads, tune_allocator
from ..storage import files
from . import branches, edits, kits, models, photos, scale
from .common import HelpFormatter, first_missing, prog_name, remove_empty

EPILOG = """examples (the built-in ToyFaces model unless --model says otherwise):
  {prog} generate --seeds 0-7 --truncation 0.7 --out samples
  {prog} generate --model hf://hysts/StyleGAN2/models/stylegan2-ffhq-1024x1024.pkl --seeds 42
  {prog} generate --model ./stylegan2-cifar10-32x32.pkl --seeds 0-3 --class 5
  {prog} info ./network-snapshot-000500.pkl
  {prog} convert ./stylegan2-car-config-f.pt ./car-native/
  {prog} list
  {prog} embed samples/seed0001.png --out embedded    # -> seed0001.latent.safetensors + _input/_recon PNGs
  {prog} segment embedded/seed0001.latent.safetensors  # -> seed0001_mask.png
  {prog} edit embedded/seed0001.latent.safetensors repainted.png --name "wider mouth"   # -> the model's library
  {prog} apply smile:1.5 "wider mouth":1 --inputs embedded --out smiling   # vectors by name or by file
  {prog} label --model ffhq-256 --n 16 --out labelled     # samples + masks from the registry's face parser
  {prog} label --model ./my-model --labeler hf://org/parser --inputs photos --map map.json --out labelled
  {prog} train-branch annotated/ --out my-branch.safetensors               # NAME.png + NAME_mask.png pairs
  {prog} kit --out my-kit --push user/my-kit    # branch + vectors + card; then --model hf://user/my-kit anywhere
"""


def output_folder(args: argparse.Namespace) -> Optional[Path]:
    """Where a command writes (to be removed again if it fails and leaves it empty)."""
    kind = getattr(args, "writes", None)
    if kind == "dst":
        return Path(args.dst)
    out = getattr(args, "out", None)
    if kind is None or out is None:
        return None
    return Path(out) if kind == "folder" else Path(out).parent


def build_parser() -> argparse.ArgumentParser:
    prog = prog_name()
    p = argparse.ArgumentParser(prog=prog, description="EditGAN Studio: generate, embed, segment, edit and apply "
                                "editing vectors with StyleGAN2 generators.", epilog=EPILOG.format(prog=prog),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"editgan-studio {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (models, photos, branches, edits, kits, scale):
        group.add_parsers(sub, HelpFormatter)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    tune_allocator()
    created = first_missing(output_folder(args))
    ok = False
    try:
        if hasattr(args, "threads"):
            policy = configure_threads(args.threads)
            if str(args.threads or "").strip().isdigit() and int(args.threads) > policy.cores:
                print(f"note: --threads {files.clip(args.threads, 20)}: this machine has {policy.cores} cores; "
                      f"using {policy.cores}", file=sys.stderr)
        rc = args.func(args)
        ok = True
        return rc
    except EditGANError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:   # the reader went away (`editgan list | head`): nothing to say to it
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 2
    except OSError as e:   # permission denied, disk full, ...: say which file
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        if not ok:
            remove_empty(created)

