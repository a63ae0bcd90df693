"""The ToyFaces parser and branches trained from its labels, for docs/results.md (issue #12, item 6).

    python bench/parser.py --n 200 --threads 1        # the whole report (60 min on one thread, other core busy)
    python bench/parser.py --n 200 --labels 16 64 --assisted 0   # the short version (about 20 min)
    python bench/parser.py --n 200 --assisted 0       # without the embedded-render rows

Scored two ways, as bench/embedding.py scores the shipped branch:
- against the exact masks of n held-out renders (seeds SEEDS['eval'] + 200,000 onwards), embedded with the
  shipped encoder + 100 optimisation steps (a branch sees the generator's features of the embedding);
- against the judge on n generator samples (RandomState seeds 5,000 onwards). A sample has no exact mask of its
  own; the distilled generator was trained to draw render(params(z)) for its z (toyfaces/distill.py), so the
  mask of that target render is reported too, as an approximate reference (the generator reproduces its target
  at 5.3/255 pixel MAE).
Rows:
- the parser itself on the renders, on their reconstructions and on the samples (and the judge beside it);
- the shipped branch (16 annotated renders, exact masks);
- branches trained with editgan_core.pipeline.fewshot.train_branch (default settings) on 16 / 64 / 256 generator samples
  (RandomState seeds 1,000,000 onwards) labelled by the parser, on the samples' own W+;
- (--assisted K) branches trained on K renders of the branch's seed range (SEEDS['annotated'] + 100,000 onwards,
  never seen by the parser), embedded like the test renders, labelled by the parser on the render itself or on
  its reconstruction, and, for comparison, with their exact masks.
Embeddings are cached in runs/bench_parser/ (delete it to recompute). The judge only scores.
"""

from __future__ import annotations

import argparse
import json
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
CACHE = ROOT / "runs" / "bench_parser"
SAMPLE_SEED = 5000           # evaluation samples (as bench/embedding.py)
TRAIN_SAMPLE_SEED = 1_000_000  # samples the parser labels for branch training
ASSISTED_OFFSET = 100_000    # SEEDS['annotated'] + this: renders for the assisted rows


def log(msg: str) -> None:
    print(msg, flush=True)


def to_tensor(imgs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float() / 127.5 - 1


def embedded(G, enc, imgs: np.ndarray, name: str, steps: int):
    """-> (ws, reconstructions uint8, psnr) of renders embedded with encoder + ``steps``, cached under ``name``."""
    from editgan_core import images_to_uint8
    from editgan_core.pipeline.embed import embed

    path = CACHE / f"{name}_{len(imgs)}_{steps}.npz"
    if path.is_file():
        d = np.load(path, allow_pickle=False)
        if np.array_equal(d["imgs"], imgs):
            return torch.from_numpy(d["ws"]), d["rec"], d["psnr"]
    t0 = time.time()
    res = [embed(G, to_tensor(imgs[i:i + 50]), steps=steps, encoder=enc) for i in range(0, len(imgs), 50)]
    ws = torch.cat([r.ws for r in res])
    rec = np.concatenate([images_to_uint8(r.image).numpy() for r in res])
    psnr = torch.cat([r.psnr for r in res]).numpy()
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, imgs=imgs, ws=ws.numpy(), rec=rec, psnr=psnr)
    log(f"embedded {len(imgs)} {name} in {time.time() - t0:.0f} s (PSNR {psnr.mean():.2f} dB)")
    return ws, rec, psnr


def samples(G, seeds):
    from editgan_core import images_to_uint8
    from editgan_core.models.generator import seeds_to_z

    z = seeds_to_z(seeds, G.z_dim)
    with torch.no_grad():
        ws = G.mapping_ws(z)
        imgs = np.concatenate([images_to_uint8(G.synthesis(p)).numpy() for p in ws.split(50)])
    return z, ws, imgs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200, help="test renders and test samples")
    p.add_argument("--steps", type=int, default=100, help="embedding steps (after the encoder)")
    p.add_argument("--labels", type=int, nargs="*", default=[16, 64, 256], help="parser-labelled samples per branch")
    p.add_argument("--assisted", type=int, default=64, help="embedded renders for the assisted rows (0: none)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--branch-steps", type=int, default=None, help="max branch steps (default: the settings'; "
                   "smaller only for a quick check)")
    p.add_argument("--parser", default=str(MODEL / "parser"))
    p.add_argument("--out", default=str(CACHE / "report.json"))
    args = p.parse_args()
    tune_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    t_all = time.time()

    from editgan_core.pipeline.embed import load_encoder
    from editgan_core.pipeline.fewshot import train_branch
    from editgan_core.loaders.hub import load_model
    from editgan_core.storage.identity import model_identity
    from editgan_core.models.segbranch import load_branch
    from editgan_core.toyfaces import judge as J
    from editgan_core.toyfaces.dataset import SEEDS, render_set
    from editgan_core.toyfaces.distill import render_latents
    from editgan_core.toyfaces.palette import CLASS_NAMES, PALETTE
    from editgan_core.toyfaces.parser import label, load_parser, miou_table

    loaded = load_model("toyfaces")
    G, ident = loaded.G.eval(), model_identity(loaded)
    enc = load_encoder(MODEL / "encoder.safetensors", expect_generator=ident)
    shipped = load_branch(MODEL / "branch.safetensors", expect_generator=ident)
    judge = J.load_judge(MODEL / "judge.safetensors")
    model, processor = load_parser(Path(args.parser))
    parse = lambda imgs: label(model, processor, imgs)          # noqa: E731
    judge_masks = lambda imgs: J.predict(judge, J.to_input(imgs))[0]   # noqa: E731
    n = args.n
    rows, times = {}, {}

    # Test sets: embedded held-out renders (exact masks) and generator samples (judge; distillation target).
    base = SEEDS["eval"] + 200_000
    imgs_r, masks_r, _ = render_set(range(base, base + n), G.img_resolution)
    t0 = time.time()
    ws_r, rec_r, psnr_r = embedded(G, enc, imgs_r, "test_renders", args.steps)
    times["embed test renders"] = time.time() - t0
    z_s, ws_s, imgs_s = samples(G, range(SAMPLE_SEED, SAMPLE_SEED + n))
    jm_s = judge_masks(imgs_s)
    target_s = render_latents(z_s, G.img_resolution)[1]

    def score(name, pred_r, pred_s, pred_s_target=None):
        rows[name] = {"vs_exact_renders": miou_table(pred_r, masks_r) if pred_r is not None else None,
                      "vs_judge_samples": miou_table(pred_s, jm_s) if pred_s is not None else None,
                      "vs_target_samples": miou_table(pred_s if pred_s_target is None else pred_s_target, target_s)
                      if pred_s is not None else None}
        r = rows[name]
        cells = [f"{r[k]['miou']:.3f}" if r[k] else "-" for k in ("vs_exact_renders", "vs_judge_samples",
                                                                   "vs_target_samples")]
        log(f"{name}: " + " / ".join(cells))

    # (a) the parser (and the judge for reference)
    t0 = time.time()
    p_r, p_rec, p_s = parse(imgs_r), parse(rec_r), parse(imgs_s)
    times["parser: label 3 x n images"] = time.time() - t0
    score("parser on the renders themselves", p_r, p_s)
    score("parser on the reconstructions of the renders", p_rec, None)
    rows["judge on the renders themselves"] = {"vs_exact_renders": miou_table(judge_masks(imgs_r), masks_r)}
    rows["judge on the reconstructions of the renders"] = {"vs_exact_renders": miou_table(judge_masks(rec_r), masks_r)}
    rows["judge on the samples"] = {"vs_target_samples": miou_table(jm_s, target_s)}
    for k in ("judge on the renders themselves", "judge on the reconstructions of the renders"):
        log(f"{k}: {rows[k]['vs_exact_renders']['miou']:.3f}")
    log(f"judge on the samples vs their distillation target: {rows['judge on the samples']['vs_target_samples']['miou']:.3f}")

    # (b) the shipped branch (16 hand-annotated renders)
    score("shipped branch, 16 hand labels (exact masks of embedded renders)",
          segment(G, shipped, ws_r, batch=50), segment(G, shipped, ws_s, batch=50))

    reports = {}

    def trained(name, ws, labels):
        t0 = time.time()
        br, rep = train_branch(G, ws, labels, CLASS_NAMES, [tuple(int(v) for v in c) for c in PALETTE],
                               generator_id=ident, **({"max_steps": args.branch_steps} if args.branch_steps else {}))
        times[name] = time.time() - t0
        reports[name] = {"steps": rep.steps, "best_step": rep.best_step, "val_miou": round(rep.val_miou, 4),
                         "seconds": round(rep.seconds, 1)}
        log(f"  trained in {rep.seconds:.0f} s, {rep.steps} steps (best {rep.best_step}), val mIoU {rep.val_miou:.3f}")
        score(name, segment(G, br, ws_r, batch=50), segment(G, br, ws_s, batch=50))

    # (c) branches from parser labels of generator samples, on the samples' own W+
    if args.labels:
        _, ws_t, imgs_t = samples(G, range(TRAIN_SAMPLE_SEED, TRAIN_SAMPLE_SEED + max(args.labels)))
        labels_t = parse(imgs_t)
        for k in args.labels:
            trained(f"branch, {k} parser-labelled generator samples", ws_t[:k], labels_t[:k])

    # (d) assisted labels of embedded renders (the path of a user photo)
    if args.assisted:
        k = args.assisted
        a0 = SEEDS["annotated"] + ASSISTED_OFFSET
        imgs_a, masks_a, _ = render_set(range(a0, a0 + k), G.img_resolution)
        t0 = time.time()
        ws_a, rec_a, _ = embedded(G, enc, imgs_a, "assisted_renders", args.steps)
        times[f"embed {k} assisted renders"] = time.time() - t0
        trained(f"branch, {k} embedded renders, parser labels of the render", ws_a, parse(imgs_a))
        trained(f"branch, {k} embedded renders, parser labels of the reconstruction", ws_a, parse(rec_a))
        trained(f"branch, {k} embedded renders, exact masks (control)", ws_a, masks_a)

    times["total"] = time.time() - t_all
    report = {"n": n, "embed_steps": args.steps, "psnr_test_renders": float(psnr_r.mean()), "rows": rows,
              "branch_training": reports, "seconds": {k: round(v, 1) for k, v in times.items()},
              "threads": torch.get_num_threads()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))

    log(f"\n| labels (n = {n}) | vs exact masks, embedded renders | vs judge, samples | vs distillation target, "
        f"samples |")
    log("|---|---|---|---|")
    for name, r in rows.items():
        cells = [f"{r[k]['miou']:.3f}" if r.get(k) else "-" for k in ("vs_exact_renders", "vs_judge_samples",
                                                                       "vs_target_samples")]
        log(f"| {name} | " + " | ".join(cells) + " |")
    for key, title in (("vs_exact_renders", "vs exact masks, embedded renders"), ("vs_judge_samples", "vs judge, samples")):
        log(f"\n| per class ({title}) | mIoU | " + " | ".join(CLASS_NAMES) + " |")
        log("|---|---|" + "---|" * len(CLASS_NAMES))
        for name, r in rows.items():
            if r.get(key):
                t = r[key]
                log(f"| {name} | {t['miou']:.3f} | " + " | ".join(f"{v:.2f}" for v in t["per_class"].values()) + " |")
    log("\nseconds: " + json.dumps(report["seconds"]))


if __name__ == "__main__":
    main()
