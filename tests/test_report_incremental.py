"""Incremental reports: only the pages whose inputs changed are rendered and written, the site
is byte for byte what a full render writes, and pages are readable by a web server."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_report import V3, _clause, _snap, build_store

from tostrack.models import Change, Diff, Document, Failure
from tostrack.render import render_site
from tostrack.render.manifest import MANIFEST_NAME
from tostrack.store import Store
from tostrack.workspace import Workspace

ARBITRATION = _clause(
    "c-arb", "5 Disputes", "Disputes go to binding arbitration.", ("arbitration",)
)
V4 = (*V3, ARBITRATION)


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _add_change(root: Path) -> int:
    """A fourth Acme version with a new arbitration clause, and a new Nimbus failure."""
    with Store(root) as store:
        previous = store.current_version("acme/terms")
        assert previous is not None
        diff = Diff(
            changes=(
                Change(
                    kind="added",
                    substantive=True,
                    new=(ARBITRATION,),
                    labels=("arbitration",),
                    labels_added=("arbitration",),
                    severity="high",
                ),
            ),
            old_clauses=V3,
            new_clauses=V4,
        )
        _, diff_id = store.save_version(
            [_snap("acme/terms", "2026-08-01T10:00:00Z", "<p>v4</p>")],
            Document(blocks=(), title="Acme Terms", effective_date="2026-08-01"),
            V4,
            title="Acme Terms",
            diff=diff,
            previous=previous,
        )
        store.record_failure(
            Failure("nimbus/usage-policy", "2026-08-02T08:00:00Z", "timeout", "no answer")
        )
    assert diff_id is not None
    return diff_id


def _render(ws: Workspace) -> Path:
    with Store(ws.root, read_only=True) as store:
        return render_site(ws, store)


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.name != MANIFEST_NAME
    }


def _identity(folder: Path) -> dict[str, tuple[int, int]]:
    """Each file's inode and modification time: an atomic rewrite changes both."""
    out = {}
    for p in folder.rglob("*"):
        if p.is_file():
            info = p.stat()
            out[p.relative_to(folder).as_posix()] = (info.st_ino, info.st_mtime_ns)
    return out


def test_incremental_render_equals_a_full_render(tmp_path: Path, umask_022: None) -> None:
    build_store(tmp_path)
    ws = Workspace.open(tmp_path)
    _render(ws)
    new_id = _add_change(tmp_path)
    _render(ws)  # incremental: the manifest of the first render is there
    full = dataclasses.replace(ws, reports_root=tmp_path / "full")  # same depth as reports/
    _render(full)
    incremental, fresh = _files(ws.reports_dir), _files(tmp_path / "full")
    assert f"changes/acme/terms/{new_id}.html" in incremental
    assert "filter/label-arbitration.html" in incremental
    assert sorted(incremental) == sorted(fresh)
    assert [name for name in incremental if incremental[name] != fresh[name]] == []


def test_only_pages_with_new_inputs_are_rewritten(tmp_path: Path, umask_022: None) -> None:
    ids = build_store(tmp_path)
    ws = Workspace.open(tmp_path)
    _render(ws)
    before = _identity(ws.reports_dir)
    _render(ws)
    assert _identity(ws.reports_dir) == before  # nothing new: nothing touched, manifest included

    new_id = _add_change(tmp_path)
    _render(ws)
    after = _identity(ws.reports_dir)
    rewritten = {name for name in before if after.get(name) != before[name]}
    for page in (
        "index.html",
        "feed.xml",
        "documents/acme/terms.html",
        "feeds/acme/terms.xml",
        "documents/nimbus/usage-policy.html",  # its new failure
        "filter/severity-high.html",
        MANIFEST_NAME,
    ):
        assert page in rewritten, page
    for diff_id in ids.values():  # the earlier change reports show nothing new
        for suffix in ("", "-side-by-side", "-inline"):
            assert f"changes/acme/terms/{diff_id}{suffix}.html" not in rewritten
    assert "feeds/nimbus/usage-policy.xml" not in rewritten
    assert "tostrack.css" not in rewritten
    assert f"changes/acme/terms/{new_id}.html" in after


def test_nothing_new_reads_no_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_store(tmp_path)
    ws = Workspace.open(tmp_path)
    _render(ws)

    def no_full_read(self: Store, diff_id: int) -> None:
        raise AssertionError(f"diff {diff_id} read in full though no page showing it changed")

    monkeypatch.setattr(Store, "diff", no_full_read)
    _render(ws)


def test_a_deleted_or_overwritten_page_is_written_again(tmp_path: Path) -> None:
    ids = build_store(tmp_path)
    ws = Workspace.open(tmp_path)
    _render(ws)
    report = ws.reports_dir / "changes" / "acme" / "terms" / f"{ids['first']}-inline.html"
    timeline = ws.reports_dir / "documents" / "acme" / "terms.html"
    good = (report.read_bytes(), timeline.read_bytes())
    report.unlink()
    timeline.write_text("edited by hand", encoding="utf-8")
    _render(ws)
    assert (report.read_bytes(), timeline.read_bytes()) == good


def test_a_template_override_rerenders_the_pages_using_it(tmp_path: Path) -> None:
    build_store(tmp_path)
    ws = Workspace.open(tmp_path)
    _render(ws)
    from tostrack.templating import packaged_templates

    packaged = (packaged_templates() / "base.html").read_text(encoding="utf-8")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "base.html").write_text(
        packaged + "<!-- our own layout -->\n", encoding="utf-8"
    )
    _render(ws)
    pages = list(ws.reports_dir.rglob("*.html"))
    assert len(pages) > 10
    assert [p for p in pages if "our own layout" not in p.read_text(encoding="utf-8")] == []


def test_pages_are_0644_and_folders_0755_less_the_umask(tmp_path: Path) -> None:
    build_store(tmp_path)
    ws = Workspace.open(tmp_path)
    previous = os.umask(0o022)
    try:
        _render(ws)
    finally:
        os.umask(previous)
    files = [p for p in ws.reports_dir.rglob("*") if p.is_file()]
    folders = [p for p in ws.reports_dir.rglob("*") if p.is_dir()]
    assert files and folders
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o644}
    assert {stat.S_IMODE(p.stat().st_mode) for p in folders} == {0o755}

    private = dataclasses.replace(ws, reports_root=tmp_path / "private")
    previous = os.umask(0o077)
    try:
        _render(private)
    finally:
        os.umask(previous)
    inside = list((tmp_path / "private").rglob("*"))
    assert {stat.S_IMODE(p.stat().st_mode) for p in inside if p.is_file()} == {0o600}
    assert {stat.S_IMODE(p.stat().st_mode) for p in inside if p.is_dir()} == {0o700}


def test_pages_an_older_tostrack_wrote_private_become_readable(
    tmp_path: Path, umask_022: None
) -> None:
    build_store(tmp_path)
    ws = Workspace.open(tmp_path)
    _render(ws)
    (ws.reports_dir / MANIFEST_NAME).unlink()  # as left by a tostrack without a manifest
    index = ws.reports_dir / "index.html"
    index.chmod(0o600)
    _render(ws)
    assert stat.S_IMODE(index.stat().st_mode) == 0o644
