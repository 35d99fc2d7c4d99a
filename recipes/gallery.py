"""One static page that shows what the zoo's models made: every ``sample.json`` under a folder.

    python recipes/gallery.py outputs/demo                      # writes outputs/demo/index.html
    python recipes/gallery.py outputs/demo --screenshot docs/gallery.png --check

``recipes/sample.py ... out_dir=D`` writes D/sample.json (model, command, NFE, seconds, the output
record's description and the files its ``save()`` wrote); ``make demo`` runs it for every shipped
model and then this script. The page knows no domain: each section shows the record's description
as text, its PNG and GIF files as images, its first meshes (.obj) as turnable 3D views and every
other file as a link, so a new domain's section appears as soon as its output record writes files;
a line under each title says what the model is (its registry builder's docstring). No network: no
fonts, scripts or styles from elsewhere; the 3D views are drawn by recipes/assets/mesh_viewer.js
(WebGL, no library), which the page's folder gets a copy of, from meshes embedded in the page.

``--check`` opens the page in headless Chromium (Debian's ``chromium``) and fails unless every image
loaded (naturalWidth > 0) and every 3D view drew something (a canvas that is not blank);
``--screenshot`` saves what the browser shows. Every link target is checked
to exist, with or without a browser. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

RECORD = "sample.json"
VIEWER = Path(__file__).resolve().parent / "assets" / "mesh_viewer.js"
MESH_SUFFIXES = (".obj",)
MAX_VIEWS = 4  # 3D views a section shows (the rest of its meshes are links)
PAGE = "index.html"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
section { border-top: 1px solid #ccc; padding: 1em 0; }
h2 { margin: 0.2em 0; font-family: monospace; }
.meta { color: #555; font-size: 0.9em; }
code, pre { background: #f6f6f6; }
pre { padding: 0.6em; overflow-x: auto; font-size: 0.85em; max-height: 30em; }
canvas { border: 1px solid #ddd; margin: 0.3em; cursor: grab; }
img { max-width: 100%; min-width: 360px; image-rendering: pixelated; border: 1px solid #ddd; margin: 0.3em 0; }
.files a { margin-right: 0.8em; font-family: monospace; font-size: 0.85em; }
"""
# After load, the page writes how many of its images decoded into <body data-images-*>: what --check
# reads back from Chromium's DOM dump.
SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  document.body.dataset.imagesTotal = imgs.length;
  document.body.dataset.imagesLoaded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
});
"""


def records(root: Path) -> list[tuple[Path, dict]]:
    """(folder, sample.json) for every record under root, in folder order."""
    out = []
    for path in sorted(root.rglob(RECORD)):
        try:
            out.append((path.parent, json.loads(path.read_text())))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not a sample record ({e})") from None
    return out


def obj_json(path: Path) -> str:
    """A Wavefront .obj's vertices and triangles as the viewer's JSON: {"v": [x, y, z, ...], "f": [a, b, c, ...]}."""
    v, f = [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["v"]:
            v += [round(float(x), 5) for x in parts[1:4]]
        elif parts[:1] == ["f"]:
            corners = [int(p.split("/")[0]) - 1 for p in parts[1:]]
            for k in range(1, len(corners) - 1):  # a polygon as a fan of triangles
                f += [corners[0], corners[k], corners[k + 1]]
    return json.dumps({"v": v, "f": f}, separators=(",", ":"))


def what_model(name: str) -> str:
    """The first sentence of the registry builder's docstring of the record's model ("" if unknown)."""
    try:
        import zoo
        from zoo.pretrained import load_config, resolve

        doc = zoo.registry.get_entry(load_config(resolve(name))["model"]).builder.__doc__ or ""
    except Exception:  # a record of a model this checkout cannot resolve: no line, the rest of the page still shows
        return ""
    return " ".join(doc.split()).split(". ")[0].rstrip(".")


def section(folder: Path, record: dict, root: Path, index: int = 0) -> str:
    rel = folder.relative_to(root)
    files = [rel / f for f in record.get("files", [])]
    images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    views = [f for f in files if f.suffix.lower() in MESH_SUFFIXES][:MAX_VIEWS]
    others = [f for f in files if f not in images]
    parts = [f"<section id=\"{html.escape(str(rel))}\">",
             f"<h2>{html.escape(str(record.get('model', rel)))}</h2>"]
    what = what_model(str(record.get("model", "")))
    if what:
        parts.append(f"<p>{html.escape(what)}.</p>")
    parts.append(f"<p class=\"meta\">NFE {record.get('nfe')} &middot; {record.get('seconds')} s &middot; "
                 f"<code>{html.escape(str(record.get('command', '')))}</code></p>")
    description = "\n".join(record.get("description") or [])
    if description:
        parts.append(f"<pre>{html.escape(description)}</pre>")
    parts += [f"<img src=\"{html.escape(f.as_posix())}\" alt=\"{html.escape(f.name)}\">" for f in images]
    for k, f in enumerate(views):
        ident = f"mesh-{index}-{k}"
        data = obj_json(root / f).replace("</", "<\\/")  # JSON inside <script>: never close the tag early
        parts.append(f"<canvas width=\"260\" height=\"260\" data-mesh=\"{ident}\" title=\"{html.escape(f.name)}: drag to turn\">"
                     f"</canvas><script type=\"application/json\" id=\"{ident}\">{data}</script>")
    if others:
        parts.append("<p class=\"files\">" + "".join(
            f"<a href=\"{html.escape(f.as_posix())}\">{html.escape(f.name)}</a>" for f in others) + "</p>")
    parts.append("</section>")
    return "\n".join(parts)


def write_page(root: Path) -> Path:
    """root/index.html from every record under root; raises when there is none."""
    found = records(root)
    if not found:
        raise ValueError(f"no {RECORD} under {root}: run recipes/sample.py with out_dir=... first")
    body = "\n".join(section(folder, record, root, i) for i, (folder, record) in enumerate(found))
    shutil.copyfile(VIEWER, root / VIEWER.name)
    page = (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>zoo gallery</title>"
            f"<style>{STYLE}</style><script>{SCRIPT}</script><script src=\"{VIEWER.name}\"></script></head>\n<body>\n<h1>What the zoo's models make</h1>\n"
            f"<p class=\"meta\">{len(found)} samples; each section names the command that made it.</p>\n"
            f"{body}\n</body></html>\n")
    path = root / PAGE
    path.write_text(page)
    return path


def missing_targets(page: Path) -> list[str]:
    """The page's src/href targets that are not files beside it."""
    targets = re.findall(r'(?:src|href)="([^"#]+)"', page.read_text())
    return [t for t in targets if not (page.parent / html.unescape(t)).is_file()]


def find_browser() -> str | None:
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


def browser_check(page: Path, screenshot: Path | None = None, browser: str | None = None) -> dict:
    """Open the page in headless Chromium: {"images_total", "images_loaded", "meshes_total",
    "meshes_drawn"} from its DOM after load,
    and a screenshot when asked. Raises RuntimeError when no browser is installed."""
    browser = browser or find_browser()
    if browser is None:
        raise RuntimeError(f"no headless browser found (tried {', '.join(BROWSERS)}); apt-get install chromium")
    url = page.resolve().as_uri()
    with tempfile.TemporaryDirectory() as profile:
        flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                 "--allow-file-access-from-files", "--virtual-time-budget=5000"]
        dom = subprocess.run([*flags, "--window-size=1200,1600", "--dump-dom", url], capture_output=True,
                             text=True, timeout=120).stdout
        if screenshot is not None:  # tall enough for every section of the demo's page
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([*flags, "--window-size=1200,5200", f"--screenshot={screenshot.resolve()}", url],
                           capture_output=True, timeout=120, check=True)
    counts = {key: re.search(rf'data-{key.replace("_", "-")}="(\d+)"', dom)
              for key in ("images_total", "images_loaded", "meshes_total", "meshes_drawn")}
    if not all(counts.values()):
        raise RuntimeError(f"the browser did not run the page's load scripts; DOM starts: {dom[:300]!r}")
    return {key: int(found.group(1)) for key, found in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", default="outputs/demo")
    parser.add_argument("--check", action="store_true", help="open the page in headless Chromium; fail on a broken image")
    parser.add_argument("--screenshot", default=None, help="save the browser's view of the page here (PNG)")
    args = parser.parse_args()
    try:
        page = write_page(Path(args.root))
    except ValueError as e:
        sys.exit(f"error: {e}")
    result = {"page": str(page), "sections": len(records(Path(args.root))), "missing": missing_targets(page)}
    if args.check or args.screenshot:
        shot = Path(args.screenshot) if args.screenshot else None
        result.update(browser_check(page, shot))
    print(f"open {page.resolve().as_uri()} in a browser")
    print(json.dumps(result))
    if result["missing"] or result.get("images_loaded", 0) != result.get("images_total", 0) or \
            result.get("meshes_drawn", 0) != result.get("meshes_total", 0):
        sys.exit(1)  # a link to nothing, an image the browser could not decode, or a blank 3D view


if __name__ == "__main__":
    main()
