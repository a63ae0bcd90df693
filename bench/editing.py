"""The ToyFaces edit benchmark (../shared/docs/benchmark.md): EditGAN vectors vs an InterFaceGAN-style baseline.

    python bench/editing.py                 # full: 200 test renders, edits smile / eye_size / hair_length
    python bench/editing.py --quick         # 50 test renders
    python bench/editing.py --starter       # also (re)build the starter vector library in checkpoints/toyfaces/vectors
    python bench/editing.py --strokes       # the "user edit" hand-drawn (bands, circles), not an exact mask

Per edit: ONE training render (seed SEEDS['annotated'] + 1000 + k) is embedded; its "user edit" is the mask of
the same face re-rendered with the attribute changed, restricted to the edited classes, pasted over the branch's
own segmentation of the embedding (what a user repaints in the app). With ``--strokes`` it is drawn the way a person
draws it instead (``draw_strokes``): a wider mouth as a filled band, a smile as a band bent up at the corners,
bigger eyes as circles, longer hair as two bands down to the shoulders. The mask edit gives delta; delta is applied
at s = 1 to every test latent, without refinement and with 10 and 30 refinement steps. The baseline fits a
linear direction in W to judge labels of 10,000 generator samples and is scaled on 200 calibration renders
(other seeds, encoder-only embeddings: the test set's distribution) so that its mean attribute change equals
the EditGAN vector's. Refinement runs 4 images at a time (each with its own loss and best iterate). The judge
scores; it never steers anything.
Test latents (embeddings of held-out renders, seeds SEEDS['eval'] + 400,000 onwards) are cached in runs/.
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

MODEL = ROOT / "checkpoints" / "toyfaces"
# attribute -> (edited classes, source value, target value, threshold for "edited")
EDITS = {
    "smile": (("lips", "mouth"), 0.15, 0.95, 0.6),
    "eye_size": (("eye_whites", "irises"), 0.1, 0.95, 0.6),
    "hair_length": (("hair",), 0.1, 0.95, 0.55),
    "mouth_open": (("lips", "mouth"), 0.0, 0.9, 0.5),
    "nose_size": (("nose",), 0.1, 1.0, 0.6),
    "mouth_width": (("lips", "mouth"), 0.1, 0.9, 0.6),
}
STARTER = {"smile": "smile", "eye_size": "bigger eyes", "hair_length": "longer hair", "mouth_open": "open mouth",
           "nose_size": "wider nose",
           "mouth_width": "wider mouth"}


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
    return loaded.G.eval(), ident, enc, branch, J.load_judge(MODEL / "judge.safetensors")


def _t(imgs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1


def _u8(x: torch.Tensor) -> np.ndarray:
    from editgan_core import images_to_uint8

    return images_to_uint8(x).cpu().numpy()


def _images(G, ws, batch=100) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([_u8(G.synthesis(p)) for p in ws.split(batch)])


def draw_strokes(seg: np.ndarray, attr: str) -> np.ndarray:
    """What a person paints for ``attr`` over the branch's segmentation ``seg`` [R, R]: rough shapes in the part
    colours, as one paints with a round brush, not the exact mask of the changed face."""
    from editgan_core.toyfaces.palette import CLASS_INDEX as C

    R = seg.shape[0]
    new = seg.copy()
    yy, xx = np.mgrid[0:R, 0:R].astype(np.float32)

    def box(mask):
        ys, xs = np.nonzero(mask)
        return ys.mean(), xs.mean(), ys.max() - ys.min() + 1, xs.max() - xs.min() + 1, ys, xs

    if attr in ("mouth_width", "smile"):
        cy, cx, h, w, _, _ = box(np.isin(seg, [C["lips"], C["mouth"]]))
        half = 0.8 * w if attr == "mouth_width" else 0.6 * w
        u = np.clip((xx - cx) / half, -1, 1)
        # the centre line: straight for a wider mouth, bent up at the corners for a smile
        line = cy + (0.0 if attr == "mouth_width" else 0.06 * R * (0.25 - u ** 2))
        inside = np.abs(xx - cx) <= half
        thick = max(2.0, h / 2)
        new[inside & (np.abs(yy - line) <= thick)] = C["lips"]
        new[inside & (np.abs(yy - line) <= 0.5) & (np.abs(xx - cx) <= half - 1)] = C["mouth"]
    elif attr == "eye_size":
        eyes = np.isin(seg, [C["eye_whites"], C["irises"]])
        _, fx, _, _, _, _ = box(np.isin(seg, [C["skin"], C["nose"], C["eyebrows"]] + [C["eye_whites"], C["irises"]]))
        for side in (xx < fx, xx >= fx):
            if not (eyes & side).any():
                continue
            cy, cx, h, w, _, _ = box(eyes & side)
            r = 0.5 * max(w, h) * 1.5
            d = np.hypot(yy - cy, xx - cx)
            new[d <= r] = C["eye_whites"]
            new[d <= 0.5 * r] = C["irises"]
    elif attr == "hair_length":
        hair = seg == C["hair"]
        _, _, _, _, ys, xs = box(hair)
        shoulders = np.nonzero((seg == C["clothing"]).any(1))[0]
        bottom = shoulders.min() + 2 if len(shoulders) else int(0.9 * R)
        band = max(3, int(0.1 * R))
        for edge in (xs.min(), xs.max() - band + 1):
            cols = (xx >= edge) & (xx < edge + band)
            rows = (yy >= np.median(ys)) & (yy <= bottom)
            new[cols & rows & np.isin(seg, [C["background"], C["hair"]])] = C["hair"]
    else:
        raise ValueError(f"no strokes for {attr!r}")
    return new


def learn_vector(G, ident, enc, branch, attr: str, k: int, strokes: bool = False, tolerance=None,
                 work_resolution=None):
    """One training render -> embedded -> repainted mask (re-rendered with the attribute changed, or hand-drawn
    ``strokes``) -> edit."""
    import dataclasses

    from editgan_core import edit_from_mask, segment

    from editgan_core import embed
    from editgan_core.toyfaces import render_seed
    from editgan_core.toyfaces.dataset import SEEDS
    from editgan_core.toyfaces.palette import CLASS_INDEX

    classes, lo, hi, _ = EDITS[attr]
    seed = SEEDS["annotated"] + 1000 + k
    img0, m0, _ = render_seed(seed, G.img_resolution, **{attr: lo})
    _, m1, _ = render_seed(seed, G.img_resolution, **{attr: hi})
    w = embed(G, _t(img0[None]), steps=100, encoder=enc).ws
    seg = segment(G, branch, w)[0]
    ids = [CLASS_INDEX[c] for c in classes]
    painted = np.isin(m0, ids) | np.isin(m1, ids)
    new = seg.copy()
    new[painted] = m1[painted]
    if strokes:
        new = draw_strokes(seg, attr)
    t = time.perf_counter()
    res = edit_from_mask(G, branch, w, new, name=STARTER[attr], generator=ident,
                         **({} if tolerance is None else {"tolerance": tolerance}),
                         **({} if work_resolution is None else {"work_resolution": work_resolution}))
    secs = time.perf_counter() - t
    vec = dataclasses.replace(res.vector, extra={**res.vector.extra, "attribute": attr, "training_seed": seed,
                                                 "from": lo, "to": hi})
    return vec, secs, (img0, _images(G, w)[0], _u8(res.image)[0], new)


def test_latents(G, enc, n: int) -> tuple:
    from editgan_core.pipeline.embed import embed
    from editgan_core.toyfaces.dataset import SEEDS, render_set

    cache = ROOT / "runs" / f"bench_edit_latents_{n}.pt"
    base = SEEDS["eval"] + 400_000
    imgs, masks, attrs = render_set(range(base, base + n), G.img_resolution)
    if cache.exists():
        return torch.load(cache, weights_only=True), imgs, masks, attrs
    ws = torch.cat([embed(G, _t(imgs[i:i + 50]), steps=100, encoder=enc).ws for i in range(0, n, 50)])
    cache.parent.mkdir(exist_ok=True)
    torch.save(ws, cache)
    return ws, imgs, masks, attrs


def calibration_latents(G, enc, n: int = 200) -> torch.Tensor:
    """Encoder-only embeddings of n renders disjoint from the test set: the test set's distribution, cheaply."""
    from editgan_core.pipeline.embed import encoder_only
    from editgan_core.toyfaces.dataset import SEEDS, render_set

    base = SEEDS["eval"] + 450_000
    imgs = render_set(range(base, base + n), G.img_resolution)[0]
    with torch.no_grad():
        return torch.cat([encoder_only(G, enc, _t(imgs[i:i + 50])).ws for i in range(0, n, 50)])


def baseline_direction(G, judge, attr: str, n: int = 10_000) -> torch.Tensor:
    """Least-squares direction in W of the judge's attribute over n generator samples (unit norm)."""
    from editgan_core.toyfaces import judge as J
    from editgan_core.toyfaces.render import ATTRIBUTES

    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(777))
    with torch.no_grad():
        w = G.mapping(z, None)
    imgs = _images(G, w.unsqueeze(1).repeat(1, G.num_ws, 1))
    y = J.predict(judge, J.to_input(imgs))[1][:, ATTRIBUTES.index(attr)]
    X = torch.cat([w, torch.ones(n, 1)], 1).double()
    coef = torch.linalg.lstsq(X, torch.from_numpy(y).double()[:, None]).solution[:-1, 0].float()
    return coef / coef.norm()


def scores(judge, before: np.ndarray, after: np.ndarray, attr: str, classes, thr: float, render_feats) -> dict:
    from editgan_core.toyfaces import judge as J
    from editgan_core.toyfaces.palette import CLASS_INDEX, NUM_CLASSES
    from editgan_core.toyfaces.render import ATTRIBUTES

    mb, ab, fb = J.predict(judge, J.to_input(before))
    ma, aa, fa = J.predict(judge, J.to_input(after))
    i = ATTRIBUTES.index(attr)
    below = ab[:, i] < thr
    acc = float((aa[below, i] >= thr).mean()) if below.any() else float("nan")
    others = [j for j in range(len(ATTRIBUTES)) if j != i]
    ids = [CLASS_INDEX[c] for c in classes]
    region = np.isin(mb, ids) | np.isin(ma, ids)
    region = torch.nn.functional.max_pool2d(torch.from_numpy(region.astype(np.float32))[:, None], 5, 1, 2)[:, 0] > 0
    out = ~region.numpy()
    diff = (before.astype(np.float32) - after.astype(np.float32)) / 127.5
    mse = np.array([(diff[k][out[k]] ** 2).mean() if out[k].any() else 0 for k in range(len(diff))])
    psnr_out = float(np.mean(10 * np.log10(4.0 / np.maximum(mse, 1e-10))))
    keep = [c for c in range(NUM_CLASSES) if c not in ids]
    ious = []
    for k in range(len(mb)):
        for c in keep:
            u = ((mb[k] == c) | (ma[k] == c)).sum()
            if u:
                ious.append(((mb[k] == c) & (ma[k] == c)).sum() / u)
    return {"accuracy": acc, "n_below": int(below.sum()), "delta_attr": float((aa[:, i] - ab[:, i]).mean()),
            "identity_attr_change": float(np.abs(aa[:, others] - ab[:, others]).mean()), "psnr_outside": psnr_out,
            "locality_iou": float(np.mean(ious)), "fd": J.frechet_distance(fa, render_feats)}


def speed(G, branch, vec, ws) -> dict:
    """Median ms of one bare generator pass and of applying a vector (batch 1, 30 runs each)."""
    import statistics

    from editgan_core.pipeline.apply import apply_vectors

    w = ws[:1]
    for _ in range(3):
        apply_vectors(G, w, [(vec, 1.0)])
    bare, app = [], []
    with torch.no_grad():
        for _ in range(30):
            t = time.perf_counter()
            G.synthesis(w)
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            apply_vectors(G, w, [(vec, 1.0)])
            app.append(time.perf_counter() - t)
    t = time.perf_counter()
    apply_vectors(G, w, [(vec, 1.0)], branch=branch, refine_steps=30)
    ref30 = time.perf_counter() - t
    return {"bare_ms": 1000 * statistics.median(bare), "apply_ms": 1000 * statistics.median(app),
            "ratio": statistics.median(app) / statistics.median(bare), "refine30_s": ref30}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="50 test images instead of 200")
    p.add_argument("--n", type=int, default=None, help="number of test images (overrides --quick)")
    p.add_argument("--edits", nargs="+", default=["smile", "eye_size", "hair_length"])
    p.add_argument("--starter", action="store_true", help="save the starter library (all five edits)")
    p.add_argument("--grid", default=str(ROOT / "docs"), help="where the picture grids go")
    p.add_argument("--strokes", action="store_true", help="the user edits are hand-drawn strokes (draw_strokes)")
    p.add_argument("--work-resolution", type=int, default=None, help="mask edits and refinement optimise with the "
                   "synthesis stopped at this resolution (default EDIT.work_resolution: none at 64 px)")
    p.add_argument("--tolerance", type=int, default=None, help="the mask edits' stroke tolerance in px (default "
                   "EDIT.tolerance)")
    p.add_argument("--edit-timing", type=int, default=0, metavar="K",
                   help="only time the mask edits: learn each vector K times, print the median seconds")
    args = p.parse_args()
    tune_allocator()
    if args.tolerance is not None:
        print(f"stroke tolerance {args.tolerance} px", flush=True)
    from PIL import Image

    from editgan_core.toyfaces import judge as J
    from editgan_core.toyfaces.dataset import SEEDS, render_set
    from editgan_core.storage.vectors import save_vector
    from editgan_core.pipeline.apply import apply_vectors

    G, ident, enc, branch, judge = _setup()
    if args.edit_timing:
        import statistics

        for attr in args.edits:
            secs = [learn_vector(G, ident, enc, branch, attr, list(EDITS).index(attr))[1]
                    for _ in range(args.edit_timing)]
            print(f"mask edit {attr}, default settings (100 steps): median {statistics.median(secs):.2f} s "
                  f"of {len(secs)} ({', '.join(f'{x:.2f}' for x in secs)})", flush=True)
        return
    n = args.n or (50 if args.quick else 200)
    if args.starter:
        for k, attr in enumerate(EDITS):
            vec, secs, _ = learn_vector(G, ident, enc, branch, attr, k)
            print(f"starter vector {vec.name!r}: {secs:.1f} s, classes {vec.classes} -> "
                  f"{save_vector(vec, MODEL / 'vectors')}", flush=True)
    ws, imgs, masks, attrs = test_latents(G, enc, n)
    rec = _images(G, ws)
    base = SEEDS["eval"] + 500_000
    render_feats = J.predict(judge, J.to_input(render_set(range(base, base + 2000), G.img_resolution)[0]))[2]
    fd_rec = J.frechet_distance(J.predict(judge, J.to_input(rec))[2], render_feats)
    j = J.evaluate(judge, n=1000)
    print(f"judge on 1,000 held-out renders: mIoU {j['miou']:.4f}; attribute MAE "
          + ", ".join(f"{a} {j['attribute_mae'][a]:.3f}" for a in args.edits), flush=True)
    print(f"unedited reconstructions of {n} test renders: Frechet distance to 2,000 renders {fd_rec:.3f}", flush=True)
    report = {}
    for k, attr in enumerate(args.edits):
        classes, lo, hi, thr = EDITS[attr]
        vec, secs, train_imgs = learn_vector(G, ident, enc, branch, attr, list(EDITS).index(attr), args.strokes,
                                             args.tolerance, args.work_resolution)
        rows, outs = {}, {}
        for steps in (0, 10, 30):
            t = time.perf_counter()
            res = apply_vectors(G, ws, [(vec, 1.0)], branch=branch, refine_steps=steps, batch=4,
                                **({} if args.work_resolution is None else {"work_resolution": args.work_resolution}))
            per = (time.perf_counter() - t) / n
            out = _u8(res.image)
            outs[steps] = out
            rows[f"EditGAN{'' if steps == 0 else f'+{steps}'}"] = {**scores(judge, rec, out, attr, classes, thr,
                                                                           render_feats), "sec_per_image": per}
        # Baseline: direction from 10,000 judge-labelled samples, scaled on a separate calibration set (200
        # other renders, embedded by the encoder alone) so that its mean attribute change equals the vector's.
        d = baseline_direction(G, judge, attr)
        wc = calibration_latents(G, enc)
        cal_before = _images(G, wc)
        target = scores(judge, cal_before, _images(G, wc + vec.delta), attr, classes, thr, render_feats)["delta_attr"]
        probe = scores(judge, cal_before, _images(G, wc + d), attr, classes, thr, render_feats)["delta_attr"]
        alpha = target / probe if abs(probe) > 1e-6 else 0.0
        t = time.perf_counter()
        out_b = _images(G, ws + alpha * d)
        rows["InterFaceGAN-style baseline"] = {**scores(judge, rec, out_b, attr, classes, thr, render_feats),
                                               "sec_per_image": (time.perf_counter() - t) / n, "alpha": alpha}
        sp = speed(G, branch, vec, ws)
        report[attr] = {"edit_seconds": secs, "rows": rows, "speed": sp}
        print(f"\n### {attr} (threshold {thr}; vector learned in {secs:.1f} s from one render; {n} test renders)\n")
        print("| method | labels | edit accuracy | mean attribute change | other attributes change | PSNR outside "
              "| locality IoU | Frechet distance | time per image |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, r in rows.items():
            labels = "10,000 (judge)" if "baseline" in name else "1 mask (+16 for the branch)"
            print(f"| {name} | {labels} | {100 * r['accuracy']:.1f}% (of {r['n_below']}) | {r['delta_attr']:+.3f} | "
                  f"{r['identity_attr_change']:.4f} | {r['psnr_outside']:.2f} dB | {r['locality_iou']:.3f} | "
                  f"{r['fd']:.3f} (floor {fd_rec:.3f}) | {1000 * r['sec_per_image']:.0f} ms |", flush=True)
        print(f"\nbatch 1, 2 cores: bare generator pass {sp['bare_ms']:.1f} ms; vector applied (no refinement) "
              f"{sp['apply_ms']:.1f} ms = {sp['ratio']:.2f}x; with 30 refinement steps {sp['refine30_s']:.2f} s; "
              f"the mask edit that made the vector (100 steps) {secs:.1f} s", flush=True)
        rows_img = [imgs[:8], rec[:8], outs[0][:8], outs[30][:8], out_b[:8]]
        grid = np.concatenate([np.concatenate(list(r), 1) for r in rows_img], 0)
        tag = "_strokes" if args.strokes else ""
        Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(
            Path(args.grid) / f"edit_{attr}{tag}.png")
        if args.strokes:     # what was painted: the training render, its segmentation, the strokes, the result
            from editgan_core.toyfaces.palette import PALETTE
            from editgan_core.storage.masks import encode_mask

            img0, rec0, out0, new = train_imgs
            row = np.concatenate([img0, rec0, encode_mask(new, PALETTE), out0], 1)
            Image.fromarray(row).resize((row.shape[1] * 4, row.shape[0] * 4), Image.NEAREST).save(
                Path(args.grid) / f"strokes_{attr}.png")
    (ROOT / "runs").mkdir(exist_ok=True)
    tag = ("_strokes" if args.strokes else "") + (f"_tol{args.tolerance}" if args.tolerance is not None else "") \
        + (f"_work{args.work_resolution}" if args.work_resolution is not None else "")
    (ROOT / "runs" / f"bench_editing{tag}.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
