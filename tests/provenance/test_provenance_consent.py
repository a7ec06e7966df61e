"""Consent records: required to build a subject, kept in its manifest, shown where
subjects are listed, refused when empty/unreadable, never silently replaced."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from backend.cli import main
from backend.provenance.consent import (
    NOT_RECORDED,
    consent_line,
    consent_of,
    make_consent,
    read_statement,
    record_consent,
)
from backend.subject.store import resolve_subject
from shared.errors import InputError


@pytest.fixture
def subject(tmp_path: Path) -> Path:
    """A copy of the default subject's manifest (all that consent touches) with the
    consent section a pre-consent Facecast wrote: none."""
    folder = tmp_path / "alice"
    folder.mkdir()
    m = json.loads((resolve_subject("default") / "manifest.json").read_text())
    m.pop("consent", None)
    m["name"] = "alice"
    (folder / "manifest.json").write_text(json.dumps(m))
    return folder


def test_old_manifests_say_not_recorded(subject: Path) -> None:
    m = json.loads((subject / "manifest.json").read_text())
    assert consent_of(m) is None and consent_line(m) == NOT_RECORDED


@pytest.mark.parametrize(("text", "file_text", "expect"), [
    (None, None, "consent statement is required"),
    ("  \n ", None, "is empty"),
    (None, "", "is empty"),
    (None, b"\xff\xfe\x00garbage\xff", "not UTF-8"),
    ("yes", "yes", "both --consent and --consent-file"),
])
def test_bad_statements_are_refused_with_a_fix(tmp_path: Path, text, file_text,
                                                expect: str) -> None:
    file = None
    if file_text is not None:
        file = tmp_path / "consent.txt"
        file.write_bytes(file_text if isinstance(file_text, bytes) else file_text.encode())
    with pytest.raises(InputError) as err:
        read_statement(text, file)
    assert expect in err.value.problem and err.value.fix


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the consent file"):
        read_statement(None, tmp_path / "missing.txt")
    folder = tmp_path / "a_folder"
    folder.mkdir()
    with pytest.raises(InputError, match="cannot read the consent file"):
        read_statement(None, folder)


def test_record_keeps_history_and_refuses_other_footage(subject: Path) -> None:
    first = make_consent("Alice agreed on 2025-03-01 to renders for the film Foo.", None)
    m = record_consent(subject, first)
    c = consent_of(m)
    source = m["source"]
    assert c.sha256 == first.sha256 and c.source_sha256 == source["sha256"]
    assert c.source_clip == source["clip"]
    # The same statement again keeps the original record.
    assert consent_of(record_consent(subject, make_consent(first.statement, None))
                      ).recorded == c.recorded
    second = make_consent("Alice extended it to the trailer.", None)
    with pytest.raises(InputError, match="already has a different consent record"):
        record_consent(subject, second)
    m = record_consent(subject, second, replace=True)
    assert consent_of(m).sha256 == second.sha256
    assert m["consent_history"][0]["sha256"] == first.sha256
    other = make_consent("Bob agreed.", None, clip_sha256="0" * 64)
    with pytest.raises(InputError, match="record consent for the footage"):
        record_consent(subject, other, replace=True)


def test_cli_consent_info_and_list(subject: Path, tmp_path: Path, capsys,
                                   monkeypatch) -> None:
    statement = tmp_path / "release.txt"
    statement.write_text("Alice (the performer) agreed in writing on 2025-03-01.\n"
                         "Signed release: release-0042.pdf\n")
    assert main(["subject", "consent", str(subject), "--consent-file", str(statement)]) == 0
    assert "Alice (the performer) agreed" in capsys.readouterr().out
    assert main(["subject", "info", str(subject)]) == 0
    out = capsys.readouterr().out
    assert "consent statement (" in out and "release-0042.pdf" in out
    assert main(["subject", "consent", str(subject), "--consent", "something else"]) == 2
    assert "--replace" in capsys.readouterr().err
    # Listed with their consent lines: the recorded one and an old, unrecorded one.
    store = tmp_path / "store"
    shutil.copytree(subject, store / "alice")
    (store / "old").mkdir()
    m = json.loads((subject / "manifest.json").read_text())
    m.pop("consent")
    m["name"] = "old"
    (store / "old" / "manifest.json").write_text(json.dumps(m))
    monkeypatch.setenv("FACECAST_SUBJECTS", str(store))
    assert main(["subject", "list"]) == 0
    out = capsys.readouterr().out
    assert "old" in out and NOT_RECORDED in out and "Alice (the performer)" in out
    assert "default" in out  # the shipped subject


def test_build_refuses_before_any_work(tmp_path: Path, capsys) -> None:
    """No consent, or an empty consent file: a clear error, nothing decoded or written."""
    out = tmp_path / "never"
    clip = tmp_path / "missing_clip.mp4"  # never opened: consent is checked first
    assert main(["subject", "build", str(clip), "--name", "x", "--out", str(out)]) == 2
    assert "consent statement is required" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["subject", "build", str(clip), "--name", "x", "--out", str(out),
                 "--consent-file", str(empty)]) == 2
    assert "is empty" in capsys.readouterr().err
    assert not out.exists()


def test_shipped_default_subject_records_its_footage() -> None:
    """The demo subject says what its footage is, and that no performer consent is on
    record; its record names the clip it was built from."""
    m = json.loads((resolve_subject("default") / "manifest.json").read_text())
    c = consent_of(m)
    assert c is not None
    assert c.source_sha256 == m["source"]["sha256"] and c.source_clip == "d6.mp4"
    assert "MIT" in c.statement and "no performer consent" in c.statement
    shipped = Path(__file__).resolve().parents[2] / "docs" / "consent" / "default-subject.txt"
    assert read_statement(None, shipped)[0] == c.statement  # re-appliable to a rebuild
