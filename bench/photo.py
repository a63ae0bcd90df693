"""Real-photo path on ToyFaces, where the truth is known: alignment error, and edits handed back into the photo.

    python bench/photo.py                    # 20 alignments, 10 photo edits
    python bench/photo.py --faces 4 --edits 2

1. Alignment: a 512-px render with neutral geometry (its own canonical crop) is drawn into a 1600x1200 canvas,
   turned (-45..45 degrees), scaled (0.5..1.5) and shifted at random; it is cut back from its landmarks
   (``align.ffhq_crop`` with ToyFaces' framing). Reported: the crop's corner error against where the render went,
   and the PSNR of the cut against the render at 512 and at 64 px.
2. Photo edits: such a canvas photo of a face with a small smile is aligned, cut to 64 px, embedded (100 steps),
   edited with the starter vector "smile" at 1 and with a mask edit (the face re-rendered smiling, lips and
   mouth pasted over the branch's segmentation), and pasted back. Reported: pixels outside the dilated edit region
   that differ from the photo (must be 0), the judge's smile on the pasted-back photo brought back to 64 px (cut
   with the same crop) before and after, and the times of aligning + cutting and of pasting back at photo size.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

NEUTRAL = dict(head_tilt=0.5, offset_x=0.5, offset_y=0.5, head_turn=0.5, eye_spacing=0.5, smile=0.5,
               mouth_width=0.5)
CANVAS = (1600, 1200)


def psnr(a, b) -> float:
    mse = ((np.asarray(a, float) - np.asarray(b, float)) ** 2).mean()
    return float("inf") if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def place(img, crop, fill=(90, 120, 60)):
    inv = crop.inverse(img.shape[0])
    return np.asarray(Image.fromarray(img).transform(CANVAS, Image.AFFINE, data=tuple(inv.reshape(-1)),
                                                     resample=Image.BICUBIC, fillcolor=fill))


def random_placement(rng, side=512):
    from editgan_core.photo import Crop

    scale = rng.uniform(0.5, 1.5)
    half = side * scale * 0.75
    return Crop(rng.uniform(half, CANVAS[0] - half), rng.uniform(half, CANVAS[1] - half), side * scale,
                math.radians(rng.uniform(-45, 45)))


def aligned(p, where, res=512):
    """The crop found from the landmarks of face ``p`` drawn where ``where`` says."""
    from editgan_core.align import ffhq_crop
    from editgan_core.toyfaces.render import alignment_framing, landmarks

    m = where.matrix(res)
    lm = {k: tuple(m[:, :2] @ np.array(v) + m[:, 2]) for k, v in landmarks(p, res).items()}
    zoom, shift = alignment_framing()
    return ffhq_crop(lm["eye_left"], lm["eye_right"], lm["mouth_left"], lm["mouth_right"], zoom=zoom, shift=shift)


def alignment(n: int, rng) -> dict:
    from editgan_core.photo import cut
    from editgan_core.toyfaces.render import render, sample_params

    corner, p512, p64 = [], [], []
    small = lambda a: np.asarray(Image.fromarray(a).resize((64, 64), Image.LANCZOS))  # noqa: E731
    for k in range(n):
        p = sample_params(9000 + k).replace(**NEUTRAL)
        img, _ = render(p, 512)
        where = random_placement(rng)
        crop = aligned(p, where)
        corner.append(float(np.abs(crop.corners() - where.corners()).max()))
        back = cut(place(img, where), crop, 512)
        p512.append(psnr(back, img))
        p64.append(psnr(small(back), small(img)))
    return {"faces": n, "corner_error_px_max": max(corner), "psnr_512_db_mean": float(np.mean(p512)),
            "psnr_512_db_min": float(np.min(p512)), "psnr_64_db_mean": float(np.mean(p64)),
            "psnr_64_db_min": float(np.min(p64))}


def photo_edits(n: int, rng, picture=None) -> dict:
    from editgan_core import edit_from_mask, embed, images_to_uint8, segment
    from editgan_core.embed import load_encoder
    from editgan_core.hub import load_model
    from editgan_core.identity import model_identity
    from editgan_core.masks import grow
    from editgan_core.photo import changed_region, cut, paste_back, region_alpha
    from editgan_core.segbranch import load_branch
    from editgan_core.settings import PASTE
    from editgan_core.toyfaces import judge as J
    from editgan_core.toyfaces.palette import CLASS_INDEX
    from editgan_core.toyfaces.render import ATTRIBUTES, render, sample_params
    from editgan_core.vectors import apply_vectors, list_library

    model = ROOT / "checkpoints" / "toyfaces"
    loaded = load_model("toyfaces")
    G, ident = loaded.G.eval(), model_identity(loaded)
    enc = load_encoder(model / "encoder.safetensors", expect_generator=ident)
    branch = load_branch(model / "branch.safetensors", expect_generator=ident)
    judge = J.load_judge(model / "judge.safetensors")
    smile = next(v for v in list_library(model / "vectors", expect_generator=ident)[0] if v.name == "smile")
    si = ATTRIBUTES.index("smile")
    smile_of = lambda a: float(J.predict(judge, J.to_input(a[None]))[1][0, si])  # noqa: E731
    rows = {"vector": [], "mask edit": []}
    t_cut, t_paste, bad_outside = [], [], 0
    for k in range(n):
        p = sample_params(9500 + k).replace(smile=0.15, mouth_open=0.1)
        img, _ = render(p, 512)
        where = random_placement(rng)
        photo = place(img, where)
        t = time.perf_counter()
        crop = aligned(p, where)
        x = cut(photo, crop, G.img_resolution)
        t_cut.append(time.perf_counter() - t)
        ws = embed(G, torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1, steps=100, encoder=enc).ws
        before = segment(G, branch, ws)[0]
        # the mask edit: the same face re-rendered smiling, lips and mouth pasted over the branch's segmentation
        _, m1 = render(p.replace(smile=0.95), G.img_resolution)
        _, m0 = render(p, G.img_resolution)
        ids = [CLASS_INDEX["lips"], CLASS_INDEX["mouth"]]
        painted = np.isin(m0, ids) | np.isin(m1, ids)
        target = before.copy()
        target[painted] = m1[painted]
        mask_edit = edit_from_mask(G, branch, ws, target, name="smile")
        edits = {"vector": (apply_vectors(G, ws, [(smile, 1.0)]).ws, branch.cfg.class_indices(smile.classes)),
                 "mask edit": (mask_edit.ws, mask_edit.classes)}
        for name, (w2, edited) in edits.items():
            with torch.no_grad():
                out = images_to_uint8(G.synthesis(w2))[0].numpy()
            after = segment(G, branch, w2)[0]
            region = changed_region(before, after, after.shape, edited)      # the edit's own parts, as the app does
            t = time.perf_counter()
            pasted = paste_back(photo, out, region, crop)
            t_paste.append(time.perf_counter() - t)
            allowed = grow(region_alpha(region, crop, CANVAS, dilate=PASTE.dilate, feather=PASTE.feather) > 0, 1)
            bad_outside += int(np.any(pasted != photo, axis=2)[~allowed].sum())
            if k == 0 and name == "mask edit" and picture:   # the first photo, before | after (and a close-up)
                c = crop.bounds(margin=20)
                closeup = lambda a: np.asarray(Image.fromarray(a[max(c[1], 0):c[3], max(c[0], 0):c[2]]).resize(  # noqa
                    (300, 300), Image.LANCZOS))
                small = lambda a: np.asarray(Image.fromarray(a).resize((400, 300), Image.LANCZOS))  # noqa: E731
                row = np.concatenate([small(photo), small(pasted), closeup(photo), closeup(pasted)], 1)
                Image.fromarray(row).save(picture)
            rows[name].append({"photo_before": smile_of(cut(photo, crop, G.img_resolution)),
                               "photo_after": smile_of(cut(pasted, crop, G.img_resolution)),
                               "crop_after": smile_of(out), "changed_px": int(np.any(pasted != photo, 2).sum())})
    summary = {}
    for name, r in rows.items():
        b, a = np.array([x["photo_before"] for x in r]), np.array([x["photo_after"] for x in r])
        summary[name] = {"judge_smile_photo_before": float(b.mean()), "judge_smile_photo_after": float(a.mean()),
                         "judge_smile_model_crop_after": float(np.mean([x["crop_after"] for x in r])),
                         "edited_share": float((a >= 0.6).mean()),
                         "changed_pixels_mean": float(np.mean([x["changed_px"] for x in r]))}
    return {"photos": n, "photo_size": list(CANVAS), "pixels_changed_outside_dilated_region": bad_outside,
            "align_and_cut_ms": 1000 * float(np.median(t_cut)), "paste_back_ms": 1000 * float(np.median(t_paste)),
            **summary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=20)
    ap.add_argument("--edits", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_photo.json"))
    ap.add_argument("--picture", default=str(ROOT / "docs" / "photo_pasteback.png"),
                    help="the first photo before | after, whole and close up")
    args = ap.parse_args()
    from editgan_core.runtime import configure_threads

    configure_threads(None)
    rng = np.random.default_rng(0)
    res = {"alignment": alignment(args.faces, rng)}
    print(json.dumps(res, indent=1), flush=True)
    if args.edits:
        res["photo_edits"] = photo_edits(args.edits, rng, args.picture)
    print(json.dumps(res, indent=1))
    Path(args.out).parent.mkdir(exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
