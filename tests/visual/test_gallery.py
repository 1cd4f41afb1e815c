"""The visual regression suite: the gallery printed by real Chromium, checked for colliding text,
text outside its card, empty plots, plots under 60% of their card, and drift from the committed
reference images. After a deliberate change of the look, regenerate the references with
`python -m tests.visual --update-references` and review the new images in the diff."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.visual.gallery import BOARDS
from tests.visual.run import MAX_DIFF_RATIO, MIN_PLOT_SHARE, GalleryResult, run_gallery


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> GalleryResult:
    return asyncio.run(run_gallery(tmp_path_factory.mktemp("gallery")))


@pytest.mark.slow
def test_every_board_was_printed_and_compared(gallery: GalleryResult) -> None:
    assert len(gallery.pdfs) == len(BOARDS)
    assert all(Path(pdf).stat().st_size > 0 for pdf in gallery.pdfs)
    compared = {name.rsplit("-p", 1)[0] for name in gallery.diffs}
    assert compared == {f"{board.name}-a4-landscape" for board in BOARDS}
    assert gallery.missing_references == []


def test_no_text_line_overlaps_another(gallery: GalleryResult) -> None:
    assert gallery.overlaps == []


def test_no_text_leaves_its_card(gallery: GalleryResult) -> None:
    assert gallery.escaped == []


def test_every_plot_has_ink(gallery: GalleryResult) -> None:
    assert gallery.shares, "no chart was measured"
    assert gallery.empty_plots == []


def test_every_plot_keeps_its_share_of_the_card(gallery: GalleryResult) -> None:
    assert gallery.small_plots == []
    assert min(gallery.shares) >= MIN_PLOT_SHARE


def test_pages_match_their_references(gallery: GalleryResult) -> None:
    drifted = {name: ratio for name, ratio in gallery.diffs.items() if ratio > MAX_DIFF_RATIO}
    assert drifted == {}, f"pages differ from tests/visual/references beyond {MAX_DIFF_RATIO:.0%}: {drifted}"
