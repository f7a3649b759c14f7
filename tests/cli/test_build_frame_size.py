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
