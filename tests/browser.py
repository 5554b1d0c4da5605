"""Open an HTML report in a real headless Chromium (Debian's `chromium`; `make test` installs it when missing) and
say what the browser saw: every image's rendered size and every console message. Optionally take a screenshot.

Also a command, for the README's screenshot of the demo report:
`python -m tests.browser reports/run-demo-<date>.html docs/report.png`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Appended to a copy of the page: after load, each image's (alt, complete, natural width) into a hidden <pre>.
PROBE = ("<script>window.addEventListener('load',()=>{const r=[...document.images].map(i=>[i.alt,i.complete,"
         "i.naturalWidth]);const p=document.createElement('pre');p.id='probe';p.hidden=true;"
         "p.textContent=JSON.stringify(r);document.body.appendChild(p)})</script>")  # fmt: skip
CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\] (.*)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files"]


@dataclass
class Seen:
    images: list[tuple[str, bool, int]]  # (alt, complete, natural width)
    console: list[str]

    @property
    def broken(self) -> list[str]:
        return [alt for alt, complete, width in self.images if not complete or width == 0]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        raise RuntimeError("no Chromium on PATH: `make test` installs Debian's `chromium` (make chromium)")
    return found


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    # A profile of its own: a Chromium already running (a user's, another test run's) locks the shared one.
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout, check=True)  # fmt: skip


def open_page(page: Path, screenshot: Path | None = None, size: str = "1280,2400") -> Seen:
    """Load `page` (a copy with `PROBE` appended, so the original is untouched) and report what rendered."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / page.name
        probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
        done = _run(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000", "--dump-dom",
                     probe.as_uri()])  # fmt: skip
    found = re.search(r"<pre id=\"probe\" hidden=\"\">(.*?)</pre>", done.stdout, re.S)
    if found is None:
        raise AssertionError(f"the page never finished loading in Chromium:\n{done.stderr[-2000:]}")
    images = [(alt, bool(complete), int(width)) for alt, complete, width in json.loads(found.group(1))]
    console = [m.group(1) for m in CONSOLE.finditer(done.stderr)]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        _run([f"--window-size={size}", f"--screenshot={screenshot.resolve()}", page.resolve().as_uri()])
    return Seen(images, console)


if __name__ == "__main__":
    seen = open_page(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
    print(f"{len(seen.images)} images, broken: {seen.broken}, console: {seen.console}")
