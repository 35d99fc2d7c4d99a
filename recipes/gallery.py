"""One static page that shows what the zoo's models made: every ``sample.json`` under a folder.

    python recipes/gallery.py outputs/demo                      # writes outputs/demo/index.html
    python recipes/gallery.py outputs/demo --screenshot docs/gallery.png --check

``recipes/sample.py ... out_dir=D`` writes D/sample.json (model, command, NFE, seconds, the output
record's description and the files its ``save()`` wrote); ``make demo`` runs it for every shipped
model and then this script. The page knows no domain: each section shows the record's description
as text, its PNG files as images and every other file as a link, so a new domain's section appears
as soon as its output record writes files. No network: no fonts, scripts or styles from elsewhere.

``--check`` opens the page in headless Chromium (Debian's ``chromium``) and fails unless every image
loaded (naturalWidth > 0); ``--screenshot`` saves what the browser shows. Every link target is checked
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


def section(folder: Path, record: dict, root: Path) -> str:
    rel = folder.relative_to(root)
    files = [rel / f for f in record.get("files", [])]
    images = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
    others = [f for f in files if f not in images]
    parts = [f"<section id=\"{html.escape(str(rel))}\">",
             f"<h2>{html.escape(str(record.get('model', rel)))}</h2>",
             f"<p class=\"meta\">NFE {record.get('nfe')} &middot; {record.get('seconds')} s &middot; "
             f"<code>{html.escape(str(record.get('command', '')))}</code></p>"]
    description = "\n".join(record.get("description") or [])
    if description:
        parts.append(f"<pre>{html.escape(description)}</pre>")
    parts += [f"<img src=\"{html.escape(f.as_posix())}\" alt=\"{html.escape(f.name)}\">" for f in images]
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
    body = "\n".join(section(folder, record, root) for folder, record in found)
    page = (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>zoo gallery</title>"
            f"<style>{STYLE}</style><script>{SCRIPT}</script></head>\n<body>\n<h1>What the zoo's models make</h1>\n"
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
    """Open the page in headless Chromium: {"images_total", "images_loaded"} from its DOM after load,
    and a screenshot when asked. Raises RuntimeError when no browser is installed."""
    browser = browser or find_browser()
    if browser is None:
        raise RuntimeError(f"no headless browser found (tried {', '.join(BROWSERS)}); apt-get install chromium")
    url = page.resolve().as_uri()
    with tempfile.TemporaryDirectory() as profile:
        flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                 "--allow-file-access-from-files", "--virtual-time-budget=5000", "--window-size=1200,1600"]
        dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([*flags, f"--screenshot={screenshot.resolve()}", url], capture_output=True,
                           timeout=120, check=True)
    found = re.search(r'data-images-total="(\d+)"[^>]*data-images-loaded="(\d+)"', dom)
    if not found:
        raise RuntimeError(f"the browser did not run the page's load script; DOM starts: {dom[:300]!r}")
    return {"images_total": int(found.group(1)), "images_loaded": int(found.group(2))}


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
    if result["missing"] or result.get("images_loaded", 0) != result.get("images_total", 0):
        sys.exit(1)  # a link to nothing, or an image the browser could not decode


if __name__ == "__main__":
    main()
