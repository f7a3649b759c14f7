"""rtdetr-build --frame-size: bad values are one line naming the flag, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import Cli


@pytest.mark.parametrize(
    "value, expected",
    [
        ("12x", "--frame-size '12x': expected WIDTHxHEIGHT, e.g. 1280x720"),
        ("0x0", "--frame-size '0x0': width and height must be >= 1"),
        ("1280", "--frame-size '1280': expected WIDTHxHEIGHT"),
    ],
)
def test_frame_size_flag_errors_are_one_line(cli: Cli, tmp_path: Path, value: str, expected: str) -> None:
    res = cli("rtdetr-build", "--model", "models/rtdetr-shapes", "--out", str(tmp_path / "o"), "--frame-size", value)
    assert expected in res.one_line_error()
    assert not (tmp_path / "o").exists()


def test_frame_size_added_to_a_bundle_in_place(cli: Cli, tiny_bundle: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from rtdetr_edge.bundle import Bundle

    copy = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    before = json.loads((copy / "metadata.json").read_text())["default_precision"]
    res = cli("rtdetr-build", "--model", str(copy), "--out", str(copy), "--frame-size", "96x80", "-q")
    assert res.code == 0, res.err
    b = Bundle(copy, verify_hashes=True)
    assert b.frame_sizes("fp32") == [(96, 80)]
    assert b.metadata["default_precision"] == before
