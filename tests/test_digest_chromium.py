"""The HTML digest as a picture: headless Chromium renders the golden fixture digest.

Mail clients only see the inlined ``style=""`` attributes, so this checks that what was
inlined actually paints: the white page column on the grey background, the blue rule
under the header, the yellow highlights of matched terms. Skips when Chromium is not
installed (``apt-get install chromium``); CI without it still runs every other test.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import pytest

from monitor.digest import render_preview
from monitor.digest_fixture import FIXTURE_GROUP, fixture_clock, fixture_config, load_fixture
from monitor.store import Store

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
WIDTH, HEIGHT = 720, 1000
GREY_BACKGROUND = (0xF3, 0xF4, 0xF6)
WHITE = (0xFF, 0xFF, 0xFF)
HEADER_BLUE = (0x1D, 0x4E, 0xD8)
HIGHLIGHT_YELLOW = (0xFE, 0xF0, 0x8A)

pytestmark = [
    pytest.mark.chromium,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]


def read_png(data: bytes) -> tuple[int, int, list[list[tuple[int, int, int]]]]:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes) to RGB rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    previous = bytearray(stride)
    rows = []
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = previous[i]
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + ((left + up) >> 1)) & 0xFF
            elif kind == 4:
                corner = previous[i - bpp] if i >= bpp else 0
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[i] = (line[i] + pred) & 0xFF
        rows.append([tuple(line[x * bpp : x * bpp + 3]) for x in range(width)])
        previous = line
    return width, height, rows  # type: ignore[return-value]


def screenshot(page: Path, shot: Path, profile: Path, width: int, height: int) -> None:
    subprocess.run(
        [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1",
            f"--user-data-dir={profile}", f"--window-size={width},{height}",
            f"--screenshot={shot}", page.as_uri(),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def test_html_digest_renders_as_designed(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "monitor.db")
    now = fixture_clock(load_fixture(store))
    html, _ = render_preview(store, fixture_config(tmp_path), FIXTURE_GROUP, now=now)
    store.close()
    page = tmp_path / "digest.html"
    page.write_text(html, encoding="utf-8")

    screenshot(page, tmp_path / "digest.png", tmp_path / "profile", WIDTH, HEIGHT)

    width, height, rows = read_png((tmp_path / "digest.png").read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    colours = Counter(pixel for row in rows for pixel in row)
    # the page column is white and centred on the grey background
    assert rows[500][2] == GREY_BACKGROUND and rows[500][WIDTH - 3] == GREY_BACKGROUND
    assert rows[500][WIDTH // 2] == WHITE
    # the header's blue rule spans the column; matched terms are highlighted
    assert colours[HEADER_BLUE] > 600 * 3 * 0.9
    assert colours[HIGHLIGHT_YELLOW] > 2000
    assert len(colours) > 200  # text was drawn (anti-aliasing makes many shades)

    # on a phone the page shrinks to the screen instead of running off its right edge
    screenshot(page, tmp_path / "phone.png", tmp_path / "profile", 380, 300)
    _, _, phone = read_png((tmp_path / "phone.png").read_bytes())
    assert all(phone[y][377] == GREY_BACKGROUND for y in range(40, 300))
