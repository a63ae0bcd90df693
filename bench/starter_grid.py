"""Picture of the starter vectors: two faces (seeds 3 and 11), each vector at scales -1, 0, 1 and 2.

    python bench/starter_grid.py        # -> docs/starter_vectors.png (rows: vector x face; columns: scale)
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from editgan_core import images_to_uint8  # noqa: E402
from editgan_core.models.generator import seeds_to_z  # noqa: E402
from editgan_core.storage.identity import model_identity  # noqa: E402
from editgan_core.loaders.hub import load_model  # noqa: E402
from editgan_core.storage.vectors import list_library
from editgan_core.pipeline.apply import apply_vectors  # noqa: E402


def main() -> None:
    m = load_model("toyfaces")
    G = m.G
    vecs, problems = list_library(ROOT / "checkpoints" / "toyfaces" / "vectors", expect_generator=model_identity(m))
    for p in problems:
        print("skipped:", p)
    z = seeds_to_z((3, 11), G.z_dim)
    ws = G.mapping_ws(z)
    rows = []
    for v in vecs:
        for i in range(len(ws)):
            cells = [images_to_uint8(apply_vectors(G, ws[i:i + 1], [(v, s)]).image)[0].numpy() for s in (-1, 0, 1, 2)]
            rows.append(np.concatenate(cells, 1))
    grid = np.concatenate(rows, 0)
    out = ROOT / "docs" / "starter_vectors.png"
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(out)
    print(f"wrote {out.relative_to(ROOT)}: rows {', '.join(v.name for v in vecs)} (two faces each); scales -1, 0, 1, 2")


if __name__ == "__main__":
    main()
