"""Kits (issue #24): what making, pushing and opening a kit costs, against opening the bare generator in the same
run, for the built-in model and a 256-px stand-in served by the stand-in Hub. Each open runs in a fresh process
(its time and peak RSS measured inside it); "offline" runs with HF_HUB_OFFLINE=1 and the Hub gone.

    python bench/kits.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

OPEN = """
import json, resource, sys, time
t0 = time.perf_counter()
from editgan_core.loaders.assets import Bundle
t1 = time.perf_counter()
b = Bundle.load(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "open_s": t2 - t1, "branch": b.branch is not None,
                  "vectors": len(b.vectors), "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def opened(ref: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", OPEN, ref], env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"opening {ref} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 2 ** 20


def row(what: str, r: dict, bare: dict) -> str:
    return (f"| {what} | {r['open_s']:.2f} s | {r['open_s'] / bare['open_s']:.2f}x | {r['branch']} | {r['vectors']} "
            f"| {r['peak_mib']:.0f} MiB |")


def main() -> None:
    import torch

    from editgan_core.commands import main as cli
    from editgan_core.loaders.hub import load_model
    from editgan_core.models.segbranch import save_branch
    from editgan_core.storage.identity import model_identity
    from editgan_core.storage.vectors import EditVector, save_vector
    from fakes import standins
    from fakes.fake_hub import FakeHub

    work = Path(tempfile.mkdtemp(prefix="bench-kits-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EDITGAN_HOME": str(work / "home"),
           "HF_HUB_CACHE": str(work / "hf-cache")}
    os.environ.update({k: env[k] for k in ("EDITGAN_HOME", "HF_HUB_CACHE")})
    print("| model | open | vs the bare generator | branch | vectors | peak RSS |\n|---|---|---|---|---|---|")

    # The built-in model: its kit includes the (64-px, project-own) weights.
    t0 = time.perf_counter()
    assert cli(["kit", "--out", str(work / "toy-kit"), "--no-library"]) == 0
    make_toy = time.perf_counter() - t0
    bare = opened("toyfaces", env)
    print(row("built-in, bare (`toyfaces`)", bare, bare))
    print(row("built-in kit folder", opened(str(work / "toy-kit"), env), bare))

    # A 256-px stand-in on the stand-in Hub: the kit references it (pinned commit + sha256).
    pkl = standins.official_pickle(256, work / "g256.pkl")
    with FakeHub() as fh:
        fh.add("org/gen256", "g256.pkl", pkl.read_bytes())
        os.environ["HF_ENDPOINT"] = env["HF_ENDPOINT"] = fh.endpoint
        ref = "hf://org/gen256/g256.pkl"
        loaded = load_model(ref)
        G, ident = loaded.G, model_identity(loaded)
        branch = standins.random_face_branch(G)           # untrained: opening costs what a trained one does
        branch.cfg.generator = ident
        bfile = save_branch(branch, work / "branch256.safetensors",
                            extra={"training": {"images": 16, "val_miou": 0.0}})
        for i in range(5):
            save_vector(EditVector(f"v{i}", 0.3 * torch.randn(G.num_ws, G.w_dim), ident, ["skin"]), work / "vecs")
        t0 = time.perf_counter()
        assert cli(["kit", "--model", ref, "--branch", str(bfile), "--vectors", str(work / "vecs"), "--no-library",
                    "--out", str(work / "kit256")]) == 0
        make_256 = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert cli(["kit", "--model", ref, "--branch", str(bfile), "--vectors", str(work / "vecs"), "--no-library",
                    "--out", str(work / "kit256"), "--push", "user/kit256"]) == 0
        make_push_256 = time.perf_counter() - t0
        uploaded = sum(len(d) for (r, _), d in fh.files.items() if r == "user/kit256") / 2 ** 20
        bare256 = opened(ref, env)                      # cached already: the generator alone
        print(row("256-px stand-in, bare (`hf://org/gen256/g256.pkl`, cached)", bare256, bare256))
        online = opened("hf://user/kit256", env)        # first open: the kit's files downloaded
        print(row("256-px kit `hf://user/kit256`, first open (downloads the kit)", online, bare256))
    offline = opened("hf://user/kit256", {**env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"})
    print(row("256-px kit, offline from the cache, the Hub gone", offline, bare256))
    print(f"\nmaking a kit: built-in {make_toy:.1f} s ({folder_mib(work / 'toy-kit'):.1f} MiB, weights included); "
          f"256-px stand-in {make_256:.1f} s, with the push {make_push_256:.1f} s; uploaded {uploaded:.1f} MiB "
          f"(the generator, {pkl.stat().st_size / 2 ** 20:.0f} MiB, is referenced, not uploaded)")


if __name__ == "__main__":
    main()
