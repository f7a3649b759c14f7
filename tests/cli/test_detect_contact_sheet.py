"""rtdetr-detect --out DIR writes DIR/index.html: a thumbnail per annotated file, linking to it."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

from rtdetr_edge.contact_sheet import THUMBNAIL_SIZE
from tests.helpers import Cli


class Links(HTMLParser):
    """Every href and src of a page, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key == "href" and value is not None:
                self.hrefs.append(value)
            if key == "src" and value is not None:
                self.srcs.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _inputs(tmp_path: Path, scene: np.ndarray) -> tuple[Path, Path]:
    src = tmp_path / "in"
    src.mkdir()
    # names a URL must escape (space, #, %, ?, &) and one HTML must escape (<, &)
    for name in ("plain.jpg", "with space #1.jpg", "100% done?.png", "a&b <c>.jpg"):
        assert cv2.imwrite(str(src / name), scene)
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    video = tmp_path / "clip.mp4"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), 10, (320, 240))
    for _ in range(4):
        vw.write(cv2.resize(scene, (320, 240)))
    vw.release()
    return src, video


def test_contact_sheet_links_every_annotated_file_through_a_thumbnail(
    cli: Cli, tiny_bundle: Path, scene: np.ndarray, tmp_path: Path
) -> None:
    src, video = _inputs(tmp_path, scene)
    out = tmp_path / "out"
    run = cli("rtdetr-detect", str(src), str(video), "--model", str(tiny_bundle), "--out", str(out), "--conf", "0.0")
    assert run.code == 0, run.err
    records = [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]
    outputs = {r["output"] for r in records}
    assert len(outputs) == 5  # four images and the clip

    page = Links()
    page.feed((out / "index.html").read_text())
    files = []
    for url in page.hrefs + page.srcs:  # relative URLs of files inside the folder: the folder can move
        parts = urlsplit(url)  # an unescaped "#", "?" or "%" in a name would cut or change the path
        assert not (parts.scheme or parts.netloc or parts.query or parts.fragment or url.startswith("/")), url
        target = out / unquote(parts.path)
        assert target.is_file() and target.resolve().is_relative_to(out.resolve()), url
        files.append(target.relative_to(out).as_posix())
    assert set(files[: len(page.hrefs)]) == outputs
    assert len(page.srcs) == 5
    for thumb_file in files[len(page.hrefs) :]:
        thumb = cv2.imread(str(out / thumb_file))
        assert thumb is not None and max(thumb.shape[:2]) <= THUMBNAIL_SIZE, thumb_file
    text = " ".join(" ".join(page.text).split())
    total = sum(len(r["detections"]) for r in records)
    assert f"4 images, 1 video; {total} detections" in text, text
    assert "a&b <c>.jpg" in text  # escaped in the HTML, read back as the name
    assert "<c>" not in (out / "index.html").read_text()
    assert "Skipped 1:" in text and "broken.jpg" in text
    frames = sum(1 for r in records if r["source"] == str(video))
    clip_dets = sum(len(r["detections"]) for r in records if r["source"] == str(video))
    assert f"{frames} frames, {clip_dets} detections" in text


def test_no_save_writes_no_contact_sheet(cli: Cli, tiny_bundle: Path, scene: np.ndarray, tmp_path: Path) -> None:
    src, _ = _inputs(tmp_path, scene)
    out = tmp_path / "out"
    run = cli("rtdetr-detect", str(src), "--model", str(tiny_bundle), "--out", str(out), "--no-save")
    assert run.code == 0, run.err
    assert sorted(p.name for p in out.iterdir()) == ["detections.jsonl"]


def test_contact_sheet_shows_its_thumbnails_in_chromium_and_loads_nothing(
    cli: Cli, tiny_bundle: Path, tmp_path: Path
) -> None:
    from tests.report.browser import page_requests, screenshot

    src = tmp_path / "in"
    src.mkdir()
    magenta = np.zeros((480, 640, 3), np.uint8)
    magenta[:] = (255, 0, 255)  # BGR: a colour nothing else on the page has
    for k in range(3):
        assert cv2.imwrite(str(src / f"m{k}.png"), magenta)
    out = tmp_path / "out"
    run = cli("rtdetr-detect", str(src), "--model", str(tiny_bundle), "--out", str(out), "--conf", "1.0")
    assert run.code == 0, run.err
    shot = cv2.imread(str(screenshot(out / "index.html", tmp_path / "sheet.png", "1100,700")))
    assert shot is not None
    shown = np.all(np.abs(shot.astype(int) - (255, 0, 255)) < 40, axis=-1).sum()  # JPEG thumbnails
    # three 240-px-wide, 180-px-high thumbnails (less the letterbox of a 4:3 image): the thumbnails
    # loaded from thumbnails/ through the page's Content-Security-Policy
    assert shown > 3 * 200 * 140, shown
    assert page_requests(out / "index.html", tmp_path / "net.json") == []


def test_long_names_get_short_thumbnails_and_the_sheets_names_are_checked_first(
    cli: Cli, tiny_bundle: Path, scene: np.ndarray, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    long_name = "y" * 236 + ".jpg"  # fits the file system; "thumbnails/<name>.jpg" + a temp suffix would not
    for name in ("a.jpg", long_name):
        assert cv2.imwrite(str(src / name), scene)
    out = tmp_path / "out"
    run = cli("rtdetr-detect", str(src), "--model", str(tiny_bundle), "--out", str(out))
    assert run.code == 0 and (out / long_name).is_file(), run.err
    assert len(list((out / "thumbnails").iterdir())) == 2
    for clash, make in (("index.html", Path.mkdir), ("thumbnails", Path.touch)):
        taken = tmp_path / f"taken-{clash}"
        taken.mkdir()
        make(taken / clash)
        line = cli("rtdetr-detect", str(src), "--model", str(tiny_bundle), "--out", str(taken), "--exist-ok")
        assert f"--out {taken}: {clash} there is a" in line.one_line_error()
        assert sorted(p.name for p in taken.iterdir()) == [clash]  # nothing was written
