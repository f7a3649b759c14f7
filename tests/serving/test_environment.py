"""The serve environment's setup never deletes a folder it did not make."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtdetr_edge.errors import InputError
from rtdetr_edge.serving import environment


def test_setup_refuses_a_folder_that_is_not_ours_and_leaves_it_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = tmp_path / "thesis"
    theirs.mkdir()
    (theirs / "chapter1.tex").write_text("years of work")
    made: list[Path] = []
    monkeypatch.setattr(environment.venv, "create", lambda root, **kw: made.append(Path(root)))
    with pytest.raises(InputError, match=r"thesis: exists and is not an rtdetr-serve environment; pass --env"):
        environment.setup_environment(theirs)
    assert (theirs / "chapter1.tex").read_text() == "years of work" and made == []


def test_setup_remakes_its_own_half_made_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder carrying the marker (an interrupted setup) or an empty one is made again."""
    ours = tmp_path / "env"
    ours.mkdir()
    (ours / environment.SETUP_MARKER).write_text("")
    (ours / "half-installed").write_text("")

    class Stop(Exception):
        pass

    def create(root: Path, **kw: object) -> None:
        raise Stop

    monkeypatch.setattr(environment.venv, "create", create)
    with pytest.raises(Stop):
        environment.setup_environment(ours)
    assert sorted(p.name for p in ours.iterdir()) == [environment.SETUP_MARKER]  # the old content went
    (tmp_path / "empty").mkdir()
    with pytest.raises(Stop):
        environment.setup_environment(tmp_path / "empty")
