"""Render a page in headless Chromium and report its broken images and script errors.

`check_page` copies the page with a probe script first in its `<head>`: it records every
script error (`error` events, caught in the capture phase so failed resources count too) and,
on `load`, every image that is not complete with a non-zero natural width and every element
that reaches past the window's right edge (a table too wide for the page), then writes them as
JSON into a `<pre id="raygan-probe">` that `--dump-dom` prints.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

PROBE_ID = "raygan-probe"
_PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  window.__errors.push(e.message || ("failed to load " + (e.target && e.target.tagName)));
}, true);
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  var edge = document.documentElement.clientWidth;
  var wide = Array.prototype.slice.call(document.body.querySelectorAll("*")).filter(
    function (e) { return e.getBoundingClientRect().right > edge + 1; });
  var out = document.createElement("pre");
  out.id = "PROBE_ID";
  out.textContent = JSON.stringify({
    images: images.length,
    broken: broken.map(function (i) { return i.alt || i.src.slice(0, 40); }),
    wide: wide.map(function (e) { return e.tagName + ": " + e.textContent.slice(0, 40); }),
    errors: window.__errors
  });
  document.body.appendChild(out);
});
</script>""".replace("PROBE_ID", PROBE_ID)

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
          "--disable-component-update", "--no-first-run", "--hide-scrollbars"]


def chromium() -> str | None:
    """The Chromium (or Chrome) binary on PATH, None when there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(binary: str, page: Path, *extra: str) -> str:
    with tempfile.TemporaryDirectory() as profile:  # a fresh profile: no state between runs
        done = subprocess.run(
            [binary, *_FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
            capture_output=True, text=True, timeout=120, check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def check_page(page: Path, screenshot: Path | None = None, width: int = 1400) -> dict[str, Any]:
    """Load `page` (with the probe) in headless Chromium, in a window `width` pixels wide.

    Args:
        page: an HTML file.
        screenshot: where to save a screenshot (`width` by 3000) of the page as loaded, if given.
        width: the window's width in pixels.

    Returns:
        `images` (how many), `broken` (their alt texts), `wide` (elements reaching past the
        window's right edge: tag and text) and `errors` (script error messages).

    Raises:
        RuntimeError: when there is no Chromium, it fails, or the probe never reported (the
            page did not finish loading).
    """
    binary = chromium()
    if binary is None:
        raise RuntimeError("no chromium binary on PATH")
    text = page.read_text()
    head = text.find("<head>")
    probed = page.with_name(page.stem + ".probed.html")
    at = head + len("<head>") if head >= 0 else 0
    probed.write_text(text[:at] + _PROBE + text[at:])
    size = f"--window-size={width},3000"
    dom = _run(binary, probed, "--dump-dom", size)
    if screenshot is not None:
        _run(binary, page, f"--screenshot={screenshot}", size)
    start = dom.find(f'<pre id="{PROBE_ID}">')
    if start < 0:
        raise RuntimeError(f"the probe did not report (the page never loaded): {dom[:500]}")
    body = dom[start + len(f'<pre id="{PROBE_ID}">'):]
    return dict(json.loads(html.unescape(body[: body.index("</pre>")])))
