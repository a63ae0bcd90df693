"""Embedding and segmentation-branch figures for docs/results.md (issue #4).

    python bench/embedding.py quality --n 200     # branch mIoU, embedding PSNR / mask IoU on the default model
    python bench/embedding.py speed               # seconds per image: default settings and encoder only
    python bench/embedding.py memory --res 256 512  # peak memory, memory-saving branch vs naive (config-f, 32 classes)
    python bench/embedding.py pivotal --n 200     # pivotal tuning vs the plain embedding (fidelity, editability)

Held-out renders come from seeds SEEDS['eval'] + 200,000 onwards and generator samples from RandomState seeds
5,000 onwards: neither was used to train the generator, the encoder or the branch. The judge only scores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from editgan_core.runtime import tune_allocator  # noqa: E402
from editgan_core.models.segbranch import segment  # noqa: E402

MODEL = ROOT / "checkpoints" / "toyfaces"


def _setup():
    from editgan_core.storage.identity import model_identity
    from editgan_core.pipeline.embed import load_encoder
    from editgan_core.loaders.hub import load_model
    from editgan_core.models.segbranch import load_branch
    from editgan_core.toyfaces import judge as J

    loaded = load_model("toyfaces")
    ident = model_identity(loaded)
    enc = load_encoder(MODEL / "encoder.safetensors", expect_generator=ident)
    branch = load_branch(MODEL / "branch.safetensors", expect_generator=ident)
    judge = J.load_judge(MODEL / "judge.safetensors")
    return loaded.G.eval(), enc, branch, judge


def _iou_table(cm: np.ndarray, names) -> dict:
    from editgan_core.toyfaces.judge import iou_from_confusion

    iou = iou_from_confusion(cm)
    return {"miou": float(np.nanmean(iou)), "per_class": {n: round(float(v), 4) for n, v in zip(names, iou)}}


def _to_tensor(imgs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1


def bench_quality(n: int, steps: int) -> None:
    from editgan_core import images_to_uint8
    from editgan_core.models.generator import seeds_to_z
    from editgan_core.pipeline.embed import embed
    from editgan_core.toyfaces import judge as J
    from editgan_core.toyfaces.dataset import SEEDS, render_set
    from editgan_core.toyfaces.palette import CLASS_NAMES, NUM_CLASSES

    G, enc, branch, judge = _setup()
    base = SEEDS["eval"] + 200_000
    imgs, masks, _ = render_set(range(base, base + n), G.img_resolution)
    rows = {}
    # 1. Held-out renders, embedded at the default settings (encoder + optimisation), in batches of 50.
    t0 = time.time()
    results = [embed(G, _to_tensor(imgs[i:i + 50]), steps=steps, encoder=enc) for i in range(0, n, 50)]
    ws = torch.cat([r.ws for r in results])
    psnr_r = torch.cat([r.psnr for r in results]).numpy()
    rec = np.concatenate([images_to_uint8(r.image).numpy() for r in results])
    print(f"embedded {n} renders in {time.time() - t0:.0f} s (batches of 50)", flush=True)
    pred = segment(G, branch, ws, batch=50)
    rows["branch_vs_exact_masks_renders"] = _iou_table(J.confusion(pred, masks), CLASS_NAMES)
    jm_rec = J.predict(judge, J.to_input(rec))[0]
    rows["embedding_renders"] = {"psnr_mean": float(psnr_r.mean()), "psnr_median": float(np.median(psnr_r)),
                                 "judge_mask_miou_recon_vs_exact": _iou_table(J.confusion(jm_rec, masks),
                                                                              CLASS_NAMES)["miou"]}
    # 2. Generator samples: branch vs judge on the sample itself; embedding of the sample image.
    z = seeds_to_z(range(5000, 5000 + n), G.z_dim)
    with torch.no_grad():
        ws_s = G.mapping_ws(z)
        samples = np.concatenate([images_to_uint8(G.synthesis(p)).numpy() for p in ws_s.split(50)])
    jm_s = J.predict(judge, J.to_input(samples))[0]
    pred_s = segment(G, branch, ws_s, batch=50)
    rows["branch_vs_judge_samples"] = _iou_table(J.confusion(pred_s, jm_s), CLASS_NAMES)
    results_s = [embed(G, _to_tensor(samples[i:i + 50]), steps=steps, encoder=enc) for i in range(0, n, 50)]
    psnr_s = torch.cat([r.psnr for r in results_s]).numpy()
    rec_s = np.concatenate([images_to_uint8(r.image).numpy() for r in results_s])
    jm_rec_s = J.predict(judge, J.to_input(rec_s))[0]
    rows["embedding_samples"] = {"psnr_mean": float(psnr_s.mean()), "psnr_median": float(np.median(psnr_s)),
                                 "judge_mask_miou_recon_vs_sample": _iou_table(J.confusion(jm_rec_s, jm_s),
                                                                               CLASS_NAMES)["miou"]}
    print(json.dumps(rows, indent=1))
    b1, b2 = rows["branch_vs_exact_masks_renders"], rows["branch_vs_judge_samples"]
    print("\n| branch (16 annotated renders) | mIoU | " + " | ".join(CLASS_NAMES) + " |")
    print("|---|---|" + "---|" * NUM_CLASSES)
    for label, r in (("vs exact masks, %d held-out renders (embedded)" % n, b1),
                     ("vs judge, %d generator samples" % n, b2)):
        print(f"| {label} | {r['miou']:.3f} | " + " | ".join(f"{v:.2f}" for v in r["per_class"].values()) + " |")
    e1, e2 = rows["embedding_renders"], rows["embedding_samples"]
    print(f"\n| embedding ({steps} steps + encoder) | PSNR mean (median) | judge-mask mIoU of reconstruction |")
    print("|---|---|---|")
    print(f"| {n} held-out renders | {e1['psnr_mean']:.2f} ({e1['psnr_median']:.2f}) dB | "
          f"{e1['judge_mask_miou_recon_vs_exact']:.3f} (vs exact masks) |")
    print(f"| {n} generator samples | {e2['psnr_mean']:.2f} ({e2['psnr_median']:.2f}) dB | "
          f"{e2['judge_mask_miou_recon_vs_sample']:.3f} (vs judge on the sample) |")


def bench_speed(k: int, steps: int) -> None:
    from editgan_core.pipeline.embed import embed, encoder_only
    from editgan_core.toyfaces.dataset import SEEDS, render_set

    G, enc, _, _ = _setup()
    imgs = render_set(range(SEEDS["eval"] + 300_000, SEEDS["eval"] + 300_000 + k), G.img_resolution, workers=1)[0]
    embed(G, _to_tensor(imgs[:1]), steps=5, encoder=enc)   # warm-up
    full, fast = [], []
    for i in range(k):
        t = time.perf_counter()
        embed(G, _to_tensor(imgs[i:i + 1]), steps=steps, encoder=enc)
        full.append(time.perf_counter() - t)
        t = time.perf_counter()
        encoder_only(G, enc, _to_tensor(imgs[i:i + 1]))
        fast.append(time.perf_counter() - t)
    print(f"embedding one image on {torch.get_num_threads()} threads: default settings (encoder + {steps} steps) "
          f"median {statistics.median(full):.2f} s (min {min(full):.2f}); encoder only median "
          f"{1000 * statistics.median(fast):.1f} ms ({k} images)")


_MEM_CHILD = r"""
import resource, sys, torch, torch.nn.functional as F
sys.path.insert(0, {root!r})
from editgan_core.models.generator import Generator, GeneratorConfig
from editgan_core.models.segbranch import BranchConfig, SegBranch
res, mode, what = {res}, {mode!r}, {what!r}
torch.manual_seed(0)
G = Generator(GeneratorConfig(img_resolution=res, channel_base=32768, channel_max=512, mapping_layers=8)).eval()
G.requires_grad_(False)
C = 32
b = SegBranch(BranchConfig(G.feature_channels(), G.feature_resolutions(), res, [str(i) for i in range(C)],
              [(i, i, i) for i in range(C)], members=10, hidden=(128, 32))).eval().requires_grad_(False)
ws = G.mapping_ws(torch.randn(1, 512))
target = torch.randint(0, C, (1, res, res))
def run():
    if what == "eval":
        with torch.no_grad():
            _, feats = G.synthesis(ws, return_features=True)
            out = b(feats) if mode == "fast" else b.naive_logits(feats)
        return out
    delta = torch.zeros_like(ws, requires_grad=True)
    img, feats = G.synthesis(ws + delta, return_features=True, fused=False)
    if mode == "fast":
        ce = b.cross_entropy(feats, torch.arange(res * res), target.view(-1))
    else:
        ce = F.cross_entropy(b.naive_logits(feats), target)
    loss = ce + img.square().mean()
    loss.backward()
    return delta.grad
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
run()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(base / 1024, peak / 1024)
"""


def bench_memory(resolutions) -> None:
    print("| resolution | what | memory-saving branch: peak RSS (MiB) | naive upsample+concat: peak RSS (MiB) |")
    print("|---|---|---|---|")
    for res in resolutions:
        for what in ("eval", "step"):
            cells = []
            for mode in ("fast", "naive"):
                code = _MEM_CHILD.format(root=str(ROOT), res=res, mode=mode, what=what)
                p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
                if p.returncode != 0:
                    tail = (p.stderr.strip().splitlines() or ["killed"])[-1]
                    cells.append(f"failed ({'out of memory' if p.returncode in (-9, 137) else tail[:60]})")
                    continue
                base, peak = map(float, p.stdout.split())
                cells.append(f"{peak:.0f} (model + latent {base:.0f}; +{peak - base:.0f})")
            label = ("one branch evaluation (no grad)" if what == "eval"
                     else "one optimisation step (G + branch + CE, backward)")
            print(f"| {res} | {label} | {cells[0]} | {cells[1]} |", flush=True)


def bench_pivotal(n: int, steps: int, tune_steps: int, lr: float, out: str) -> None:
    """Each of n held-out renders: embedded (encoder + ``steps``), then tuned one by one (``tune_steps`` at ``lr``).
    Fidelity: PSNR and the judge's mask of the reconstruction against the exact mask. Editability on the tuned
    generator: the branch's segmentation against the exact mask, and the starter vector "smile" at 1 (the judge's
    smile change and the change of the other attributes), each against the plain embedding."""
    from editgan_core import images_to_uint8
    from editgan_core.pipeline.embed import embed, pivotal_tune
    from editgan_core.storage.identity import model_identity
    from editgan_core.loaders.hub import load_model
    from editgan_core.toyfaces import judge as J
    from editgan_core.toyfaces.dataset import SEEDS, render_set
    from editgan_core.toyfaces.palette import CLASS_NAMES, NUM_CLASSES
    from editgan_core.toyfaces.render import ATTRIBUTES
    from editgan_core.storage.vectors import list_library

    G, enc, branch, judge = _setup()
    ident = model_identity(load_model("toyfaces"))
    smile = next(v for v in list_library(MODEL / "vectors", expect_generator=ident)[0] if v.name == "smile")
    si = ATTRIBUTES.index("smile")
    base = SEEDS["eval"] + 200_000
    imgs, masks, _ = render_set(range(base, base + n), G.img_resolution)
    results = [embed(G, _to_tensor(imgs[i:i + 50]), steps=steps, encoder=enc) for i in range(0, n, 50)]
    ws = torch.cat([r.ws for r in results])
    u8 = lambda x: images_to_uint8(x).numpy()  # noqa: E731
    cm = {k: np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64) for k in ("judge_plain", "judge_tuned", "branch_plain",
                                                                       "branch_tuned")}
    psnr = {"plain": [], "tuned": []}
    attrs = {k: [] for k in ("plain_before", "plain_after", "tuned_before", "tuned_after")}
    secs = []
    for i in range(n):
        target = _to_tensor(imgs[i:i + 1])
        t = time.perf_counter()
        tu = pivotal_tune(G, ws[i:i + 1], target, steps=tune_steps, lr=lr)
        secs.append(time.perf_counter() - t)
        psnr["plain"].append(tu.psnr_before)
        psnr["tuned"].append(tu.psnr)
        for name, g in (("plain", G), ("tuned", tu.G)):
            with torch.no_grad():
                rec, edited = u8(g.synthesis(ws[i:i + 1])), u8(g.synthesis(ws[i:i + 1] + smile.delta))
            jm, a0, _ = J.predict(judge, J.to_input(rec))
            a1 = J.predict(judge, J.to_input(edited))[1]
            cm[f"judge_{name}"] += J.confusion(jm, masks[i:i + 1])
            cm[f"branch_{name}"] += J.confusion(segment(g, branch, ws[i:i + 1]), masks[i:i + 1])
            attrs[f"{name}_before"].append(a0[0])
            attrs[f"{name}_after"].append(a1[0])
        if (i + 1) % 10 == 0:
            print(f"{i + 1}/{n}: PSNR {np.mean(psnr['plain']):.2f} -> {np.mean(psnr['tuned']):.2f} dB, "
                  f"{np.mean(secs):.1f} s/photo", flush=True)
    others = [j for j in range(len(ATTRIBUTES)) if j != si]
    rows = {}
    for name in ("plain", "tuned"):
        b, a = np.array(attrs[f"{name}_before"]), np.array(attrs[f"{name}_after"])
        rows[name] = {"psnr_db": float(np.mean(psnr[name])),
                      "judge_mask_miou_recon_vs_exact": _iou_table(cm[f"judge_{name}"], CLASS_NAMES)["miou"],
                      "branch_miou_vs_exact": _iou_table(cm[f"branch_{name}"], CLASS_NAMES)["miou"],
                      "smile_vector_delta_smile": float((a[:, si] - b[:, si]).mean()),
                      "smile_vector_other_attr_change": float(np.abs(a[:, others] - b[:, others]).mean())}
    rows["seconds_per_photo"] = {"median": float(np.median(secs)), "mean": float(np.mean(secs))}
    rows["settings"] = {"n": n, "embed_steps": steps, "tune_steps": tune_steps, "lr": lr,
                        "threads": torch.get_num_threads()}
    print(json.dumps(rows, indent=1))
    Path(out).parent.mkdir(exist_ok=True)
    Path(out).write_text(json.dumps(rows, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["quality", "speed", "memory", "pivotal"])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--k", type=int, default=10, help="images timed one by one (speed)")
    p.add_argument("--res", type=int, nargs="+", default=[256, 512])
    p.add_argument("--tune-steps", type=int, default=None, help="pivotal: tuning steps (default PIVOTAL.steps)")
    p.add_argument("--lr", type=float, default=None, help="pivotal: tuning learning rate (default PIVOTAL.lr)")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench_pivotal.json"))
    args = p.parse_args()
    tune_allocator()
    if args.what == "quality":
        bench_quality(args.n, args.steps)
    elif args.what == "speed":
        bench_speed(args.k, args.steps)
    elif args.what == "pivotal":
        from editgan_core.settings import PIVOTAL

        bench_pivotal(args.n, args.steps, args.tune_steps or PIVOTAL.steps, args.lr or PIVOTAL.lr, args.out)
    else:
        bench_memory(args.res)


if __name__ == "__main__":
    main()
