"""Labelling with a transformers semantic-segmentation model (editgan_core/pipeline/labeling.py), offline: tiny random
SegFormers made with save_pretrained, read from a folder or served by the stand-in Hub; the class map; the parser
registry; every bad input refused with a message that says what it is."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_generator
from fakes.fake_hub import FakeHub
from fakes.standins import (FACE_LABELS,  # noqa: E402,F401 -- the stand-in parser, shared with the rehearsal
                            make_segformer)
from PIL import Image

from editgan_core.errors import EditGANError, ModelNotFoundError
from editgan_core.loaders.checkpoints import save_native
from editgan_core.loaders.labelers import Labeler, load_labeler
from editgan_core.loaders.registry import CHECKPOINTS_DIR, PARSERS, REGISTRY
from editgan_core.pipeline.labeling import ClassMap, class_palette, fit_note, label_images, parser_for, save_mask_png

FACE_CLASSES = ["background", "skin", "nose", "eye_g", "eye", "brow", "ear", "mouth", "lips", "hair", "hat",
                "ear_r", "neck_l", "neck", "cloth"]


@pytest.fixture(scope="module")
def seg_dir(tmp_path_factory) -> Path:
    return make_segformer(tmp_path_factory.mktemp("seg") / "face-parser")


def images(n=3, size=40, seed=0) -> np.ndarray:
    return (np.random.RandomState(seed).rand(n, size, size, 3) * 255).astype(np.uint8)


def serve(fh: FakeHub, repo: str, folder: Path, only=None) -> None:
    for p in sorted(folder.iterdir()):
        if p.is_file() and (only is None or p.name in only):
            fh.add(repo, p.name, p.read_bytes())


# ----------------------------------------------------------------------------------------------------------
# The registry's parsers


def test_parser_registry_and_parser_for():
    fp, toy = PARSERS["face-parsing"], PARSERS["toyfaces-parser"]
    assert fp.repo_id == "jonathandinu/face-parsing" and fp.license == "CC0-1.0" and fp.domain == "faces"
    assert fp.revision is None          # only the short commit 373bfce is known; see the registry's comment
    assert fp.hub_ref == "hf://jonathandinu/face-parsing"
    assert toy.local_dir == "toyfaces/parser" and toy.models == ("toyfaces",) and toy.repo_id is None
    for name, p in PARSERS.items():
        assert p.name == name and p.domain and (p.local_dir or p.repo_id)
        assert p.revision is None or len(p.revision) == 40
    assert all(spec.domain for spec in REGISTRY.values())
    assert parser_for("toyfaces") == "toyfaces-parser"
    assert parser_for(str(CHECKPOINTS_DIR / "toyfaces")) == "toyfaces-parser"     # the built-in model by its path
    for name in ("ffhq-256", "ffhq-512", "ffhq-1024", "celebahq-256", "metfaces-1024"):
        assert parser_for(name) == "face-parsing", name
        assert parser_for(REGISTRY[name]) == "face-parsing"
    assert parser_for("car-512") is None and parser_for("church-256") is None
    assert parser_for("./some/model.pkl") is None


def test_missing_builtin_parser_is_said(monkeypatch):
    monkeypatch.setitem(PARSERS, "toyfaces-parser",
                        dataclasses.replace(PARSERS["toyfaces-parser"], local_dir="toyfaces/no-such-parser"))
    with pytest.raises(ModelNotFoundError, match=r"built-in parser 'toyfaces-parser' is missing.*no-such-parser"):
        load_labeler("toyfaces-parser")


# ----------------------------------------------------------------------------------------------------------
# Loading and predicting


def test_folder_loaded_once_predicts_like_transformers(seg_dir):
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    lab = load_labeler(str(seg_dir))
    assert isinstance(lab, Labeler) and load_labeler(str(seg_dir)) is lab      # once per process
    assert lab.label_names == FACE_LABELS and lab.domain is None and lab.ref == str(seg_dir)
    assert lab.architecture == "SegformerForSemanticSegmentation"
    assert next(lab.model.parameters()).dtype == torch.float32
    x = images(3, 40)
    ids = lab.predict(x)
    assert ids.shape == (3, 40, 40) and ids.dtype == np.uint8 and ids.max() < len(FACE_LABELS)
    assert len(np.unique(ids)) > 3                                              # a real label map, not one colour
    assert np.array_equal(lab.predict(x), ids)                                  # deterministic
    assert np.array_equal(lab.predict(x, batch=1), ids)                         # batching changes nothing
    # the same as transformers' own pipeline: processor, model, logits upsampled bilinearly, argmax
    proc = AutoImageProcessor.from_pretrained(str(seg_dir), backend="pil")
    model = AutoModelForSemanticSegmentation.from_pretrained(str(seg_dir)).eval()
    with torch.no_grad():
        outputs = model(**proc(images=list(x), return_tensors="pt"))
    ref = proc.post_process_semantic_segmentation(outputs, target_sizes=[(40, 40)] * 3)
    assert np.array_equal(np.stack([r.numpy() for r in ref]), ids)
    with pytest.raises(EditGANError, match=r"uint8 RGB images \[N, H, W, 3\]"):
        lab.predict(x[0])
    with pytest.raises(EditGANError, match="uint8"):
        lab.predict(x.astype(np.float32))


def test_from_the_hub_then_offline_pinned_and_registry(seg_dir, tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    local = load_labeler(str(seg_dir))
    x = images(2, 24, seed=3)
    with FakeHub() as fh:
        serve(fh, "org/parser", seg_dir)
        lab = load_labeler("hf://org/parser", cache_dir=cache, endpoint=fh.endpoint)
        assert lab.label_names == FACE_LABELS and "models--org--parser" in str(lab.path)
        assert load_labeler("hf://org/parser", cache_dir=cache, endpoint=fh.endpoint) is lab
        assert np.array_equal(lab.predict(x), local.predict(x))
        pinned = load_labeler(f"hf://org/parser@{fh.commit}", cache_dir=cache, endpoint=fh.endpoint)
        before = fh.requests
        assert load_labeler(f"hf://org/parser@{fh.commit}", cache_dir=cache, endpoint=fh.endpoint) is pinned
        assert fh.requests == before                       # a pinned commit comes from the cache, no request
        assert pinned.model is lab.model                   # one folder, one model in memory
        # a registry entry pointing at it, HF_ENDPOINT read at the call
        serve(fh, "org/face-parser", seg_dir)
        monkeypatch.setitem(PARSERS, "face-parsing",
                            dataclasses.replace(PARSERS["face-parsing"], repo_id="org/face-parser"))
        monkeypatch.setenv("HF_ENDPOINT", fh.endpoint)
        reg = load_labeler("face-parsing", cache_dir=cache)
        assert reg.domain == "faces" and reg.spec.name == "face-parsing" and reg.ref == "face-parsing"
        assert np.array_equal(reg.predict(x), local.predict(x))
        # hf:// to a registry parser's repo is that parser
        assert load_labeler("hf://org/face-parser", cache_dir=cache).domain == "faces"
    # the server gone: from the cache
    monkeypatch.delenv("HF_ENDPOINT")
    again = load_labeler("hf://org/parser", cache_dir=cache, local_files_only=True)
    assert again is lab
    assert load_labeler("hf://org/parser", cache_dir=cache, endpoint="http://127.0.0.1:9") is lab


def test_offline_with_nothing_cached(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"config\.json.*org/parser.*not in the local cache"):
        load_labeler("hf://org/parser", cache_dir=str(tmp_path), local_files_only=True)
    with pytest.raises(ModelNotFoundError, match=r"config\.json.*org/parser"):
        load_labeler("hf://org/parser", cache_dir=str(tmp_path), endpoint="http://127.0.0.1:9")


def test_not_a_segmentation_model_is_refused(tmp_path, seg_dir):
    from transformers import (BertConfig, BertModel, SegformerForImageClassification, SegformerModel, ViTConfig,
                              ViTForImageClassification)

    BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                         intermediate_size=8)).save_pretrained(tmp_path / "bert")
    with pytest.raises(EditGANError, match=r"BertModel.*not a semantic-segmentation model"):
        load_labeler(str(tmp_path / "bert"))
    ViTForImageClassification(ViTConfig(image_size=16, patch_size=8, hidden_size=8, num_hidden_layers=1,
                                         num_attention_heads=1, intermediate_size=8)).save_pretrained(tmp_path / "vit")
    with pytest.raises(EditGANError, match=r"ViTForImageClassification.*not a semantic-segmentation model"):
        load_labeler(str(tmp_path / "vit"))
    make_segformer(tmp_path / "segcls", cls=SegformerForImageClassification)   # right model_type, wrong head
    with pytest.raises(EditGANError, match=r"SegformerForImageClassification.*not a semantic-segmentation"):
        load_labeler(str(tmp_path / "segcls"))
    # a config that claims a segmentation head over weights that have none
    make_segformer(tmp_path / "headless", cls=SegformerModel)
    cfg = json.loads((tmp_path / "headless" / "config.json").read_text())
    cfg["architectures"] = ["SegformerForSemanticSegmentation"]
    (tmp_path / "headless" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EditGANError, match=r"not a complete SegformerForSemanticSegmentation.*missing.*decode_head"):
        load_labeler(str(tmp_path / "headless"))
    # StyleGAN: a native folder, a registry generator, a checkpoint file
    native = save_native(make_generator(), tmp_path / "gen")
    with pytest.raises(EditGANError, match=r"EditGAN Studio generator.*not a semantic-segmentation model"):
        load_labeler(str(native))
    with pytest.raises(EditGANError, match=r"'toyfaces' is a generator.*face-parsing"):
        load_labeler("toyfaces")
    (tmp_path / "g.pkl").write_bytes(b"\x80\x04junk")
    with pytest.raises(EditGANError, match=r"g\.pkl is a file \(a StyleGAN checkpoint is a generator\)"):
        load_labeler(str(tmp_path / "g.pkl"))
    # pickled weights only; no processor; nothing there
    shutil.copytree(seg_dir, tmp_path / "pickled")
    (tmp_path / "pickled" / "model.safetensors").rename(tmp_path / "pickled" / "pytorch_model.bin")
    with pytest.raises(EditGANError, match=r"safetensors only.*pytorch_model\.bin, a pickle, which is never loaded"):
        load_labeler(str(tmp_path / "pickled"))
    shutil.copytree(seg_dir, tmp_path / "noproc")
    (tmp_path / "noproc" / "preprocessor_config.json").unlink()
    with pytest.raises(EditGANError, match=r"no preprocessor_config\.json"):
        load_labeler(str(tmp_path / "noproc"))
    with pytest.raises(ModelNotFoundError, match=r"unknown labeler 'nowhere'.*face-parsing"):
        load_labeler("nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EditGANError, match=r"no config\.json"):
        load_labeler(str(tmp_path / "empty"))


def test_hub_repo_checked_before_its_weights(tmp_path, seg_dir):
    from transformers import ViTConfig, ViTForImageClassification

    ViTForImageClassification(ViTConfig(image_size=16, patch_size=8, hidden_size=8, num_hidden_layers=1,
                                         num_attention_heads=1, intermediate_size=8)).save_pretrained(tmp_path / "vit")
    with FakeHub() as fh:
        serve(fh, "org/classifier", tmp_path / "vit", only={"config.json"})     # no weights served at all
        with pytest.raises(EditGANError, match="ViTForImageClassification.*not a semantic-segmentation"):
            load_labeler("hf://org/classifier", cache_dir=str(tmp_path / "c"), endpoint=fh.endpoint)
        serve(fh, "org/pickled", seg_dir, only={"config.json", "preprocessor_config.json"})
        fh.add("org/pickled", "pytorch_model.bin", b"pickle")
        with pytest.raises(EditGANError, match=r"org/pickled has no model\.safetensors.*safetensors only"):
            load_labeler("hf://org/pickled", cache_dir=str(tmp_path / "c"), endpoint=fh.endpoint)
        with pytest.raises(ModelNotFoundError, match="not found"):
            load_labeler("hf://org/nothing-here", cache_dir=str(tmp_path / "c"), endpoint=fh.endpoint)
        with pytest.raises(EditGANError, match=r"names a file"):
            load_labeler("hf://org/pickled/pytorch_model.bin", cache_dir=str(tmp_path / "c"), endpoint=fh.endpoint)


# ----------------------------------------------------------------------------------------------------------
# The class map


def test_default_map_merges_sides_and_lips():
    cm = ClassMap.default(FACE_LABELS)
    t = cm.table
    assert t["l_eye"] == t["r_eye"] == "eye" and t["l_brow"] == t["r_brow"] == "brow"
    assert t["l_ear"] == t["r_ear"] == "ear" and t["u_lip"] == t["l_lip"] == "lips"
    assert t["background"] == "background" and t["eye_g"] == "eye_g" and t["ear_r"] == "ear_r"
    assert cm.classes() == FACE_CLASSES
    assert ClassMap.default(FACE_LABELS).classes() == cm.classes()            # stable
    # no background label: the 0-th is; 'bg' by name; left_/right_ pairs; an l_ without its r_ stays
    assert ClassMap.default(["wall", "left_hand", "right_hand", "l_foot"]).table == {
        "wall": "background", "left_hand": "hand", "right_hand": "hand", "l_foot": "l_foot"}
    assert ClassMap.default(["cat", "bg"]).table == {"cat": "cat", "bg": "background"}
    assert ClassMap.default(["cat", "bg"]).classes() == ["background", "cat"]


def test_apply_json_and_bad_maps(tmp_path):
    cm = ClassMap.default(FACE_LABELS)
    ids = np.array([[0, 4, 5], [11, 12, 13]], np.uint8)          # background, l_eye, r_eye / u_lip, l_lip, hair
    out = cm.apply(ids, FACE_LABELS, FACE_CLASSES)
    assert out.dtype == np.uint8
    assert [[FACE_CLASSES[i] for i in row] for row in out] == [["background", "eye", "eye"], ["lips", "lips", "hair"]]
    # a map the user edited: unlisted labels go to background
    small = ClassMap({"l_eye": "eye", "r_eye": "eye", "hair": "hair"})
    assert small.classes() == ["background", "eye", "hair"]
    assert small.apply(ids, FACE_LABELS, small.classes()).tolist() == [[0, 1, 1], [0, 0, 2]]
    assert "skin" in small.unmapped(FACE_LABELS) and "l_eye" not in small.unmapped(FACE_LABELS)
    # JSON both ways, from text and from a file, order kept
    assert ClassMap.from_json(cm.to_json()) == cm
    (tmp_path / "m.json").write_text(small.to_json())
    assert ClassMap.from_json(tmp_path / "m.json").classes() == ["background", "eye", "hair"]
    assert ClassMap.from_json(str(tmp_path / "m.json")) == small
    # unknown names, listed
    with pytest.raises(EditGANError, match=r"labels the labeler does not have: left_eye, tail"):
        ClassMap({"left_eye": "eye", "tail": "tail", "hair": "hair"}).apply(ids, FACE_LABELS, ["background", "eye"])
    with pytest.raises(EditGANError, match=r"not among the branch's classes: eye, hair"):
        small.apply(ids, FACE_LABELS, ["background", "skin"])
    with pytest.raises(EditGANError, match=r"outside 0\.\.18"):
        cm.apply(np.array([[19]]), FACE_LABELS, FACE_CLASSES)
    # unreadable maps name their file
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(EditGANError, match=r"bad\.json: not valid JSON"):
        ClassMap.from_json(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text('["eye"]')
    with pytest.raises(EditGANError, match=r"list\.json: a class map is a JSON object"):
        ClassMap.from_json(tmp_path / "list.json")
    with pytest.raises(EditGANError, match=r"no such class map file: .*gone\.json"):
        ClassMap.from_json(tmp_path / "gone.json")
    with pytest.raises(EditGANError, match=r"non-empty strings"):
        ClassMap.from_json('{"l_eye": 3}')
    with pytest.raises(EditGANError, match="non-empty"):
        ClassMap({})


def test_label_images_palette_and_mask_png(seg_dir, tmp_path):
    lab = load_labeler(str(seg_dir))
    x = images(2, 32, seed=5)
    cm = ClassMap.default(lab.label_names)
    names = cm.classes()
    labels = label_images(lab, x, cm, names)
    assert labels.shape == (2, 32, 32) and labels.dtype == np.uint8
    assert np.array_equal(labels, cm.apply(lab.predict(x), lab.label_names, names))
    with pytest.raises(EditGANError, match="not among the branch.s classes: nose, eye_g, eye, brow"):
        label_images(lab, x, cm, ["background", "skin"])
    # colours: distinct, deterministic, background black, the base's where it names the class
    pal = class_palette(names)
    assert len(set(pal)) == len(names) and pal[0] == (0, 0, 0) and class_palette(names) == pal
    based = class_palette(names, {"hair": (140, 70, 20), "skin": (255, 204, 153)})
    assert based[names.index("hair")] == (140, 70, 20) and based[names.index("skin")] == (255, 204, 153)
    assert len(set(based)) == len(names)
    assert len(set(class_palette([f"c{i}" for i in range(120)]))) == 120
    # palette PNG: mode P, reads back as the palette's colours
    path = save_mask_png(tmp_path / "m" / "a_mask.png", labels[0], pal)
    im = Image.open(path)
    assert im.mode == "P"
    rgb = np.asarray(im.convert("RGB"))
    assert np.array_equal(rgb, np.asarray(pal, np.uint8)[labels[0]])


def test_fit_note_for_another_domain(seg_dir, monkeypatch):
    lab = load_labeler(str(seg_dir))
    assert fit_note("car-512", lab) is None                       # a local folder: domain unknown, nothing said
    face = dataclasses.replace(lab, domain="faces", spec=PARSERS["face-parsing"])
    assert fit_note("ffhq-256", face) is None
    assert "parses faces but car-512 draws cars" in fit_note("car-512", face)
    toy = dataclasses.replace(lab, ref="toyfaces-parser", domain="faces", spec=PARSERS["toyfaces-parser"])
    assert fit_note("toyfaces", toy) is None
    assert "made for toyfaces, not ffhq-256" in fit_note("ffhq-256", toy)
