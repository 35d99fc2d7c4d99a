"""recipes/gallery.py: the page shows every sample record, its links resolve, and in a real browser
(headless Chromium, when installed) every image decodes and the page is not blank."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from recipes.gallery import browser_check, find_browser, missing_targets, write_page

ROOT = Path(__file__).resolve().parents[2]


def fake_demo(root: Path) -> None:
    """Two records as recipes/sample.py writes them: a digit-grid-like PNG, and mesh files + text."""
    (root / "digits").mkdir(parents=True)
    grid = (np.random.default_rng(0).random((56, 112)) * 255).astype(np.uint8)
    Image.fromarray(grid).save(root / "digits" / "samples.png")
    (root / "digits" / "sample.json").write_text(json.dumps(
        {"model": "toy-digits", "command": "python recipes/sample.py model=toy", "nfe": 1, "seconds": 0.1,
         "description": ["class labels: [0, 1]"], "files": ["samples.png"]}))
    (root / "meshes").mkdir()
    (root / "meshes" / "mesh_000.glb").write_bytes(b"glTF")
    trimesh.creation.box(extents=(0.4, 0.8, 0.3)).export(root / "meshes" / "mesh_000.obj")
    Image.fromarray(grid.T.copy()).save(root / "meshes" / "meshes.png")
    (root / "meshes" / "sample.json").write_text(json.dumps(
        {"model": "toy-meshes", "command": "python recipes/sample.py model=toy2 <&>", "nfe": 21, "seconds": 2.0,
         "description": ["mesh 0: chair, 199 faces <after> cleanup"],
         "files": ["mesh_000.glb", "mesh_000.obj", "meshes.png"]}))


def test_page_lists_every_record_escaped_and_its_links_resolve(tmp_path):
    fake_demo(tmp_path)
    page = write_page(tmp_path)
    text = page.read_text()
    assert text.count("<section") == 2 and "toy-digits" in text and "toy-meshes" in text
    assert 'src="digits/samples.png"' in text and 'href="meshes/mesh_000.glb"' in text
    assert "&lt;after&gt;" in text and "<after>" not in text  # descriptions and commands are escaped
    assert "http" not in text  # nothing fetched from elsewhere
    assert missing_targets(page) == []
    assert text.count("<canvas") == 1 and '"f":[' in text  # the .obj embedded as a 3D view
    assert (tmp_path / "mesh_viewer.js").is_file() and 'src="mesh_viewer.js"' in text
    (tmp_path / "meshes" / "mesh_000.glb").unlink()
    assert missing_targets(page) == ["meshes/mesh_000.glb"]


def test_a_folder_without_records_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="sample.json"):
        write_page(tmp_path)


@pytest.mark.skipif(find_browser() is None, reason="no headless Chromium here (apt-get install chromium)")
def test_in_a_browser_every_image_loads_and_the_page_is_not_blank(tmp_path):
    fake_demo(tmp_path)
    page = write_page(tmp_path)
    shot = tmp_path / "shot.png"
    assert browser_check(page, shot) == {"images_total": 2, "images_loaded": 2, "meshes_total": 1, "meshes_drawn": 1}
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10 and (pixels < 100).mean() > 0.01  # text and images, not a white page
    (tmp_path / "digits" / "samples.png").write_bytes(b"not a png")  # a broken image is caught
    (tmp_path / "meshes" / "mesh_000.obj").write_text("v 0 0 0\n")  # and a mesh with nothing to draw
    write_page(tmp_path)
    assert browser_check(page) == {"images_total": 2, "images_loaded": 1, "meshes_total": 1, "meshes_drawn": 0}


@pytest.mark.slow
@pytest.mark.skipif(find_browser() is None, reason="no headless Chromium here (apt-get install chromium)")
def test_the_demo_commands_make_a_page_that_loads(tmp_path):
    """A real record from recipes/sample.py (the one-step student: quick), then the gallery's --check."""
    out = tmp_path / "demo" / "student"
    subprocess.run([sys.executable, "recipes/sample.py", "model=distilled_decoding-mnist", "steps=1",
                    "+kwargs.class_labels=[0,1,2,3]", f"out_dir={out}"], cwd=ROOT, check=True, capture_output=True)
    record = json.loads((out / "sample.json").read_text())
    assert record["model"] == "distilled_decoding-mnist" and record["nfe"] == 1 and record["files"] == ["samples.png"]
    run = subprocess.run([sys.executable, "recipes/gallery.py", str(tmp_path / "demo"), "--check"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1])["images_loaded"] == 1
