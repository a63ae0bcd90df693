"""The minimal app: one Studio per process, the sample endpoint over HTTP, clear errors."""

import numpy as np
import pytest
from PIL import Image

from conftest import make_generator
from editgan_core.checkpoints import save_native
from editgan_core.cli import main
from editgan_core.errors import EditGANError


@pytest.fixture(scope="module")
def app_module():
    import app
    return app


def test_studio_sample_matches_cli(tmp_path, app_module):
    model = save_native(make_generator(), tmp_path / "m")
    img, caption = app_module.STUDIO.sample(str(model), 3, 0.7)
    main(["generate", "--model", str(model), "--seeds", "3", "--truncation", "0.7", "--out", str(tmp_path / "o")])
    assert np.array_equal(img, np.asarray(Image.open(tmp_path / "o" / "seed0003.png")))
    assert "seed 3" in caption
    assert app_module.STUDIO.model(str(model)) is app_module.STUDIO.model(str(model))  # loaded once
    with pytest.raises(EditGANError, match="unknown model"):
        app_module.STUDIO.sample("no-such-model", 0, 0.7)
    with pytest.raises(EditGANError, match="seed"):
        app_module.STUDIO.sample(str(model), -1, 0.7)


def test_sample_endpoint_over_http(tmp_path, app_module):
    from gradio_client import Client

    model = save_native(make_generator(), tmp_path / "m")
    demo = app_module.build_ui()
    demo.queue()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        image_path, caption, info = client.predict(str(model), 5, 0.7, api_name="/sample")
        img = np.asarray(Image.open(image_path))
        assert img.shape == (32, 32, 3)
        assert np.array_equal(img, app_module.STUDIO.sample(str(model), 5, 0.7)[0])
        assert "native" in info
        with pytest.raises(Exception, match="unknown model"):
            client.predict("no-such-model", 0, 0.7, api_name="/sample")
    finally:
        demo.close()
