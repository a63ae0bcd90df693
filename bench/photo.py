"""Real-photo path on ToyFaces, where the truth is known: alignment error, and edits handed back into the photo.

    python bench/photo.py                    # 20 alignments, 21 photo edits
    python bench/photo.py --faces 4 --edits 3
    python bench/photo.py --faces 0 --edits 0 --astronaut docs/astronaut_handback.png --out runs/bench_astronaut.json

1. Alignment: a 512-px render with neutral geometry (its own canonical crop) is drawn into a 1600x1200 canvas,
   turned (-45..45 degrees), scaled (0.5..1.5) and shifted at random; it is cut back from its landmarks
   (``align.ffhq_crop`` with ToyFaces' framing). Reported: the crop's corner error against where the render went,
   and the PSNR of the cut against the render at 512 and at 64 px.
2. Photo edits: a face with a small smile drawn into photos of 512x512, 1024x768 and 1600x1200 in turn (at a
   random place, turn and scale; it fills the 512-px one) is aligned, cut to 64 px, embedded (100 steps), edited
   four ways (the starter vectors smile, bigger eyes and longer hair at 1, and a mask edit of the mouth: the
   face re-rendered smiling, lips and mouth pasted over the branch's segmentation), and handed back four ways:
   today's (the model's pixels over every pixel of the edited classes) and ``photo.hand_back`` with each blend
   where parts changed shape (delta, poisson, replace). Reported per edit and way: the share of photo pixels
   changed by more than 10 levels (and at all), the edited parts' own area grown by the margin (the bound) and
   what changed beyond it, the PSNR of the photo outside that area, the judge's attribute for the edit on the
   photo cut back to 64 px before and after, and how far the judge's other attributes moved; the times.
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


def place(img, crop, size=CANVAS, fill=(90, 120, 60)):
    inv = crop.inverse(img.shape[0])
    return np.asarray(Image.fromarray(img).transform(size, Image.AFFINE, data=tuple(inv.reshape(-1)),
                                                     resample=Image.BICUBIC, fillcolor=fill))


def random_placement(rng, side=512):
    from editgan_core.pipeline.photo import Crop

    scale = rng.uniform(0.5, 1.5)
    half = side * scale * 0.75
    return Crop(rng.uniform(half, CANVAS[0] - half), rng.uniform(half, CANVAS[1] - half), side * scale,
                math.radians(rng.uniform(-45, 45)))


def aligned(p, where, res=512):
    """The crop found from the landmarks of face ``p`` drawn where ``where`` says."""
    from editgan_core.pipeline.align import ffhq_crop
    from editgan_core.toyfaces.render import alignment_framing, landmarks

    m = where.matrix(res)
    lm = {k: tuple(m[:, :2] @ np.array(v) + m[:, 2]) for k, v in landmarks(p, res).items()}
    zoom, shift = alignment_framing()
    return ffhq_crop(lm["eye_left"], lm["eye_right"], lm["mouth_left"], lm["mouth_right"], zoom=zoom, shift=shift)


def alignment(n: int, rng) -> dict:
    from editgan_core.pipeline.photo import cut
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


SIZES = [(512, 512), (1024, 768), (1600, 1200)]       # the photos' sizes, in turn
# edit -> (what the judge reads, the parts it is about: their own area grown by the margin is the goal's bound)
EDITS = {"smile vector": ("smile", ["lips", "mouth"]), "bigger eyes vector": ("eye_size", ["eye_whites", "irises"]),
         "longer hair vector": ("hair_length", ["hair"]), "mask edit of the mouth": ("smile", ["lips", "mouth"])}
VECTOR_OF = {"smile vector": "smile", "bigger eyes vector": "bigger eyes", "longer hair vector": "longer hair"}
OTHER = ["iris_hue", "hair_length", "eye_size", "smile", "skin_tone", "hair_hue", "mouth_open"]   # judge, unchanged?
WAYS = ["today", "delta", "poisson", "replace"]


def parts_area(labels_before, labels_after, classes) -> np.ndarray:
    """The pixels of ``classes`` before or after an edit, grown by the edit margin: what the hand-back replaced
    before issue #21 (today's way), and the bound the issue sets for the new one."""
    from editgan_core.settings import EDIT
    from editgan_core.storage.masks import grow

    classes = list(classes)
    return grow(np.isin(labels_before, classes) | np.isin(labels_after, classes), EDIT.margin)


def placed_photo(k: int, rng):
    """Photo k: a 512-px render with a small smile, drawn into a photo of SIZES[k % 3] at a random place, turn
    and scale (it fills a 512-px photo) -> (params, photo, the crop it is cut by)."""
    from editgan_core.pipeline.photo import Crop
    from editgan_core.toyfaces.render import render, sample_params

    p = sample_params(9500 + k).replace(smile=0.15, mouth_open=0.1)
    size = SIZES[k % len(SIZES)]
    if size == (512, 512):
        where = Crop(256, 256, 512)
    else:
        scale = rng.uniform(0.5, min(size) / 512 * 0.6)
        half = 512 * scale * 0.71             # the turned square stays in the photo
        where = Crop(rng.uniform(half, size[0] - half), rng.uniform(half, size[1] - half), 512 * scale,
                     math.radians(rng.uniform(-30, 30)))
    img, _ = render(p, 512)
    photo = place(img, where, size)
    crop = where if size == (512, 512) else aligned(p, where)
    return p, photo, crop, where


def photo_edits(n: int, rng, picture=None) -> dict:
    """Each edit handed back each way: today's (the model's pixels over every pixel of the edited classes), and
    photo.hand_back with each blend where parts changed shape."""
    from editgan_core import edit_from_mask, images_to_uint8, segment
    from editgan_core.loaders.assets import Bundle
    from editgan_core import embed
    from editgan_core.pipeline.photo import cut, changed_region, hand_back, paste_back, region_alpha
    from editgan_core.toyfaces import judge as J
    from editgan_core.toyfaces.palette import CLASS_INDEX
    from editgan_core.toyfaces.render import ATTRIBUTES, render
    from editgan_core.pipeline.apply import apply_vectors

    toy = Bundle.load("toyfaces")               # the model with its encoder, branch and vectors, as the app has it
    G, enc, branch, R = toy.G, toy.encoder, toy.branch, toy.G.img_resolution
    judge = J.load_judge(ROOT / "checkpoints" / "toyfaces" / "judge.safetensors")
    vectors = {v.name: v for v in toy.vectors}
    attrs = lambda a: J.predict(judge, J.to_input(a[None]))[1][0]  # noqa: E731
    rows = {e: {w: [] for w in WAYS} for e in EDITS}
    t_region, t_way = [], {w: [] for w in WAYS}
    pictures = {}
    for k in range(n):
        p, photo, crop, where = placed_photo(k, rng)
        size = (photo.shape[1], photo.shape[0])
        x = cut(photo, crop, R)
        ws = embed(G, torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1, steps=100, encoder=enc).ws
        with torch.no_grad():
            before = images_to_uint8(G.synthesis(ws))[0].numpy()
        labels_before = segment(G, branch, ws)[0]
        # the mask edit: the same face re-rendered smiling, lips and mouth pasted over the branch's segmentation
        _, m1 = render(p.replace(smile=0.95), R)
        _, m0 = render(p, R)
        ids = [CLASS_INDEX["lips"], CLASS_INDEX["mouth"]]
        painted = np.isin(m0, ids) | np.isin(m1, ids)
        target = labels_before.copy()
        target[painted] = m1[painted]
        mask_edit = edit_from_mask(G, branch, ws, target, name="smile")
        a_photo = attrs(cut(photo, crop, R))
        # the reference: today's paste of the unedited reconstruction over the same parts (what the judge reads into
        # the model's face alone)
        recon_only = {e: attrs(cut(paste_back(photo, before, parts_area(labels_before, labels_before, (
            branch.cfg.class_indices(vectors[VECTOR_OF[e]].classes) if e in VECTOR_OF else mask_edit.classes)),
            crop), crop, R))[ATTRIBUTES.index(a)] for e, (a, _) in EDITS.items()}
        for edit, (attr, parts) in EDITS.items():
            if edit in VECTOR_OF:
                vec = vectors[VECTOR_OF[edit]]
                w2, classes = apply_vectors(G, ws, [(vec, 1.0)]).ws, branch.cfg.class_indices(vec.classes)
            else:
                w2, classes = mask_edit.ws, mask_edit.classes
            with torch.no_grad():
                after = images_to_uint8(G.synthesis(w2))[0].numpy()
            labels_after = segment(G, branch, w2)[0]
            part_ids = [CLASS_INDEX[c] for c in parts]
            own = parts_area(labels_before, labels_after, part_ids)
            bound = region_alpha(own, crop, size) > 0        # the edited parts' own area, grown, in the photo
            t = time.perf_counter()
            region = changed_region(before, after, labels_before, labels_after, classes)
            t_region.append(time.perf_counter() - t)
            for way in WAYS:
                t = time.perf_counter()
                if way == "today":
                    out = paste_back(photo, after, parts_area(labels_before, labels_after, classes), crop)
                else:
                    out = hand_back(photo, crop, before, after, region, blend=way).photo
                t_way[way].append(time.perf_counter() - t)
                moved = np.abs(out.astype(np.int16) - photo).max(2)
                a_out = attrs(cut(out, crop, R))
                rows[edit][way].append({
                    "changed_10": float((moved > 10).mean()), "changed_any": float((moved > 0).mean()),
                    "parts_area": float(bound.mean()),
                    "over_bound_10": float(((moved > 10) & ~bound).mean()),
                    "psnr_outside_parts": psnr(out[~bound], photo[~bound]),
                    "judge_before": float(a_photo[ATTRIBUTES.index(attr)]),
                    "judge_today_no_edit": float(recon_only[edit]),
                    "judge_after": float(a_out[ATTRIBUTES.index(attr)]),
                    "others_moved": float(np.mean([abs(a_out[ATTRIBUTES.index(o)] - a_photo[ATTRIBUTES.index(o)])
                                                   for o in OTHER if o != attr])),
                    "iris_hue_moved": float(abs(a_out[ATTRIBUTES.index("iris_hue")]
                                                - a_photo[ATTRIBUTES.index("iris_hue")]))})
                if picture and k == 0 and way in ("today", "poisson"):
                    pictures.setdefault(edit, [photo]).append(out)
    if picture:
        _grid(pictures, picture)
    summary = {}
    for edit, ways in rows.items():
        summary[edit] = {}
        for way, r in ways.items():
            mean = lambda key: float(np.mean([x[key] for x in r]))  # noqa: E731
            summary[edit][way] = {
                "changed_over_10_levels": mean("changed_10"), "changed_at_all": mean("changed_any"),
                "parts_area_grown": mean("parts_area"), "changed_over_10_beyond_parts": mean("over_bound_10"),
                "psnr_outside_parts_db_min": float(min(x["psnr_outside_parts"] for x in r)),
                "judge_before": mean("judge_before"), "judge_today_without_the_edit": mean("judge_today_no_edit"),
                "judge_after": mean("judge_after"),
                "judge_others_moved": mean("others_moved"), "judge_iris_hue_moved": mean("iris_hue_moved"),
                "judge_after_per_photo": [round(x["judge_after"], 3) for x in r]}
    return {"photos": n, "sizes": SIZES, "edit_region_ms": 1000 * float(np.median(t_region)),
            "hand_back_ms": {w: 1000 * float(np.median(t)) for w, t in t_way.items()}, **summary}


def _grid(pictures: dict, path) -> None:
    """Rows: the edits; columns: the photo, today's hand-back, the new one (the default blend); at full size."""
    rows = []
    for edit, images in pictures.items():
        rows.append(np.concatenate(images, 1))
    Image.fromarray(np.concatenate(rows, 0)).save(path)


def astronaut(path) -> dict:
    """The new user's path on a real photo (scikit-image's astronaut, 512x512) with the built-in model: aligned,
    embedded with pivotal tuning, smiled with the starter vector at 1.5 and given a wider open mouth by a mask edit
    (painted on the branch's segmentation), each handed back today's way and the new way. Writes the picture
    (rows: the two edits; columns: the photo, today's, the new one; full size) and returns the numbers."""
    from skimage.data import astronaut as photo_of

    from editgan_core import edit_from_mask, images_to_uint8, segment
    from editgan_core.loaders.assets import Bundle

    from editgan_core import embed
    from editgan_core.pipeline.align import align_photo
    from editgan_core.pipeline.embed import pivotal_tune
    from editgan_core.pipeline.photo import changed_region, cut, hand_back, paste_back
    from editgan_core.toyfaces.palette import CLASS_INDEX
    from editgan_core.pipeline.apply import apply_vectors

    toy = Bundle.load("toyfaces")
    G, enc, branch, R = toy.G, toy.encoder, toy.branch, toy.G.img_resolution
    smile = next(v for v in toy.vectors if v.name == "smile")
    photo = photo_of()
    crop = align_photo(photo, R).crop
    x = torch.from_numpy(cut(photo, crop, R)).permute(2, 0, 1)[None].float() / 127.5 - 1
    ws = embed(G, x, steps=100, encoder=enc).ws
    Gt = pivotal_tune(G, ws, x).G
    with torch.no_grad():
        before = images_to_uint8(Gt.synthesis(ws))[0].numpy()
    labels = segment(Gt, branch, ws)[0]
    mouth = np.isin(labels, [CLASS_INDEX["lips"], CLASS_INDEX["mouth"]])
    rows, cols = np.nonzero(mouth)
    target = labels.copy()
    y = int(rows.mean())
    target[y:y + 2, cols.min() - 1:cols.max() + 2] = CLASS_INDEX["mouth"]        # a wider, open mouth
    res = edit_from_mask(Gt, branch, ws, target, name="open wider")
    edits = {"smile x1.5": (apply_vectors(Gt, ws, [(smile, 1.5)]).ws, branch.cfg.class_indices(smile.classes)),
             "mask edit: a wider open mouth": (res.ws, res.classes)}
    out, grid = {}, []
    for name, (w2, classes) in edits.items():
        with torch.no_grad():
            after = images_to_uint8(Gt.synthesis(w2))[0].numpy()
        labels_after = segment(Gt, branch, w2)[0]
        old = paste_back(photo, after, parts_area(labels, labels_after, classes), crop)
        new = hand_back(photo, crop, before, after, changed_region(before, after, labels, labels_after, classes))
        out[name] = {"today_changed_over_10": float((np.abs(old.astype(int) - photo).max(2) > 10).mean()),
                     "new_changed_over_10": float((np.abs(new.photo.astype(int) - photo).max(2) > 10).mean()),
                     "new": new.summary()}
        grid.append(np.concatenate([photo, old, new.photo], 1))
    Image.fromarray(np.concatenate(grid, 0)).save(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=20)
    ap.add_argument("--edits", type=int, default=21, help="photos edited (sizes in turn: %s)" % SIZES)
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_photo.json"))
    ap.add_argument("--picture", default=str(ROOT / "docs" / "photo_handback.png"),
                    help="the first photo (512 px): a row per edit: the photo, today's hand-back, the new one")
    ap.add_argument("--astronaut", default="", help="also write the real-photo picture (scikit-image's astronaut) here")
    args = ap.parse_args()
    from editgan_core.runtime import configure_threads

    configure_threads(None)
    rng = np.random.default_rng(0)
    res = {"alignment": alignment(args.faces, rng)} if args.faces else {}
    print(json.dumps(res, indent=1), flush=True)
    if args.edits:
        res["photo_edits"] = photo_edits(args.edits, rng, args.picture)
    if args.astronaut:
        res["astronaut"] = astronaut(args.astronaut)
    import resource

    res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res, indent=1))
    Path(args.out).parent.mkdir(exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
