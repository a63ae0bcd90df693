"""The dataset command: seeds -> images and part masks as a Hugging Face datasets folder, on the batch engine
(scale/engine.py): one process, or every process of a torchrun job, resumable, each shard written once."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..errors import CLIError
from ..loaders.assets import Bundle
from ..loaders.hub import push_folder
from ..loaders.registry import get_spec
from ..scale import engine
from ..scale.dataset import (CARD, check_datasets, dataset_card, render_rows, seed_items, shard_path, shard_rows,
                             write_shard)
from ..settings import SAMPLE, check_scale
from ..storage import files
from .common import PSI, common, job_done, load, parse_seeds, positive_int, prog_name
from .edits import find_vector, parse_vector_arg


def cmd_dataset(args: argparse.Namespace) -> int:
    check_datasets()
    r = engine.ranks()
    seeds = list(args.seeds) if args.seeds is not None else list(range(args.count))
    loaded = load(args)
    bundle = Bundle.of(loaded, args.model, loaded.G.w_avg.device, perceptual="fallback", vectors=False)
    if bundle.branch is None:
        raise CLIError(f"{args.model} has no segmentation branch: a dataset's masks come from one (pass a kit, or "
                       f"train a branch with train-branch and make a kit of it)")
    pairs = []
    for text in args.vectors or ():
        ref, scale = parse_vector_arg(text)
        vec = find_vector(loaded, bundle.identity, ref)
        pairs.append((vec, check_scale(vec.name, scale, vec.scale_range)))
    out = Path(args.out)
    G = bundle.G
    spec = {"command": "dataset", "model": args.model, "generator": bundle.identity.get("sha256"),
            "seeds": [seeds[0], seeds[-1], len(seeds), sum(seeds) % 1_000_003], "truncation": args.truncation,
            "vectors": [[v.name, s] for v, s in pairs], "chunk": args.chunk, "latents": args.latents}
    engine.claim(out, spec)
    items = seed_items(seeds, args.chunk)

    def process(item):
        rows = render_rows(bundle, item.value, truncation=args.truncation, pairs=pairs, latents=args.latents,
                           batch=args.batch)
        write_shard(shard_path(out, item), rows, G.num_ws, G.w_dim)

    summary = engine.run(items, process, lambda it: shard_path(out, it).is_file(), out, desc="shards",
                         threads=args.threads)
    if r.rank == 0:
        rows = sum(shard_rows(shard_path(out, it)) for it in items if shard_path(out, it).is_file())
        command = " ".join([prog_name()] + [shlex.quote(a) for a in sys.argv[1:]])
        card = dataset_card(model=args.model, identity=bundle.identity, classes=bundle.classes,
                            truncation=args.truncation, seeds=seeds, latents=args.latents,
                            vectors=[f"{v.name} x{s:g}" for v, s in pairs], rows=rows, command=command,
                            license=args.license or (getattr(get_spec(args.model), "license", "") or ""))
        files.write_text(out / CARD, card)
        print(f"{out}: {rows} rows in {len(items)} shards (datasets.load_dataset({str(out)!r}))")
        if args.push and rows == len(seeds):
            url = push_folder(out, args.push, args.token, what=f"{rows} rows from {args.model}",
                              repo_type="dataset", ignore=[".failures/*", ".job.json"])
            print(f"pushed to the dataset repo {args.push}: {url}")
        elif args.push:
            print(f"note: not pushed: {len(seeds) - rows} rows are missing (see the failures above)", file=sys.stderr)
    job_done(summary, r)
    return 0


def add_parsers(sub, fmt) -> None:
    """The dataset subcommand, its options beside the code above."""
    d = sub.add_parser("dataset", help="seeds -> image + part mask per row, a Hugging Face datasets folder; runs "
                                       "under torchrun on many processes and machines, resumable",
                       formatter_class=fmt)
    common(d)
    d.add_argument("--out", required=True, help="the dataset folder (a rerun of the same job completes it)")
    which = d.add_mutually_exclusive_group(required=True)
    which.add_argument("--seeds", type=parse_seeds, default=None, help="e.g. 0-99999 or 1,5,9-12")
    which.add_argument("--count", type=positive_int, default=None,
                       help="seeds 0 to COUNT-1 (not --n: torchrun would take it for one of its options)")
    d.add_argument("--truncation", type=PSI, default=SAMPLE.truncation, help="truncation psi")
    d.add_argument("--vectors", nargs="*", default=None, metavar="NAME[:SCALE]",
                   help="editing vectors added to every latent (names or files, as apply takes them)")
    d.add_argument("--latents", action="store_true", help="a column with each row's W+ latent")
    d.add_argument("--chunk", type=positive_int, default=64, help="rows per Parquet shard (the unit of work)")
    d.add_argument("--batch", type=positive_int, default=4, help="images per generator pass")
    d.add_argument("--license", default="", help="the dataset's licence id (default: the generator's)")
    d.add_argument("--push", default=None, metavar="USER/NAME", help="upload the finished dataset to this Hub "
                                                                     "dataset repo")
    d.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or huggingface-cli login)")
    d.set_defaults(func=cmd_dataset, writes="folder")
