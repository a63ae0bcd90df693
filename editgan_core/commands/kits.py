"""The kit command: a generator with its branch, encoder, classes, labeler, class map and vectors, written as one
folder (storage/kits.py) that any model reference accepts, and pushed to a Hub model repo when asked."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from ..errors import CLIError
from ..loaders.assets import BRANCH_NAME, Bundle, companion
from ..loaders.hub import push_folder
from ..storage.kits import write_kit
from ..storage.vectors import list_library, load_vector
from .common import about, common, load


def cmd_kit(args: argparse.Namespace) -> int:
    loaded = load(args)
    bundle = Bundle.of(loaded, args.model, loaded.G.w_avg.device, branch=args.branch or "auto", perceptual="fallback",
                       vectors="model" if args.no_library else True)
    for problem in bundle.problems:
        print(f"note: skipped {problem}", file=sys.stderr)
    branch_file = Path(args.branch) if args.branch else companion(loaded, BRANCH_NAME)
    if bundle.branch is None or branch_file is None:
        raise CLIError(f"{args.model} has no segmentation branch: a kit needs one (pass --branch FILE, or train one "
                       f"with train-branch)")
    for item in args.vectors or ():
        path = Path(item)
        with about(path):
            found = (list_library(path, expect_generator=bundle.identity) if path.is_dir()
                     else ([load_vector(path, expect_generator=bundle.identity)], []))
        bundle.vectors = [v for v in bundle.vectors if v.name not in {f.name for f in found[0]}] + found[0]
        for problem in found[1]:
            print(f"note: skipped {problem}", file=sys.stderr)
    class_map = None
    if args.map:
        with about(args.map):
            try:
                class_map = json.loads(Path(args.map).read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise CLIError(f"{args.map}: not a JSON class map ({e})") from None
        if not isinstance(class_map, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                      for k, v in class_map.items()):
            raise CLIError(f"{args.map}: a class map is a JSON object of labeler label -> class name")
    with tempfile.TemporaryDirectory() as scratch:
        parts = bundle.kit_parts(branch_file, Path(scratch), license=args.license, title=args.title,
                                 labeler=args.labeler, class_map=class_map)
        parts.repo = args.push
        if parts.native_folder is not None:
            print(f"note: the kit includes the generator's weights ({bundle.ref} is a local file, not a pinned Hub "
                  f"file): share it only if you may redistribute them", file=sys.stderr)
        out = write_kit(parts, args.out)
    print(f"{out}: kit of {bundle.ref} -- branch ({len(parts.class_names)} classes), {len(parts.vectors)} vectors"
          f"{', encoder' if parts.encoder_file else ''}; generator "
          f"{'included' if parts.native_folder else 'referenced: ' + parts.generator_ref}")
    if args.push:
        url = push_folder(out, args.push, args.token, what=f"kit of {bundle.ref}")
        print(f"pushed to {args.push}: {url}\nopen it with --model hf://{args.push}")
    return 0


def add_parsers(sub, fmt) -> None:
    """The kit subcommand, its options beside the code above."""
    k = sub.add_parser("kit", help="write a ready-to-edit kit (generator reference, branch, vectors, model card); "
                                   "--push uploads it", formatter_class=fmt)
    common(k)
    k.add_argument("--out", required=True, help="the kit's folder (new, empty, or an earlier kit)")
    k.add_argument("--branch", default=None, help="the segmentation branch (default: the model's own)")
    k.add_argument("--vectors", nargs="*", default=None, metavar="PATH",
                   help="more vectors: files or folders (the model's starter vectors and your library are in "
                        "already)")
    k.add_argument("--no-library", action="store_true",
                   help="leave out your own library's vectors for this model (its starter vectors stay)")
    k.add_argument("--labeler", default="", help="the labeler the branch's labels came from (for the card)")
    k.add_argument("--map", default=None, help="the class map used with it (JSON), kept in the kit")
    k.add_argument("--license", default="", help="the generator's licence id for the card (default: the registry's)")
    k.add_argument("--title", default="", help="the card's title")
    k.add_argument("--push", default=None, metavar="USER/NAME", help="upload the kit to this Hub model repo")
    k.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or huggingface-cli login)")
    k.set_defaults(func=cmd_kit, writes="folder")
