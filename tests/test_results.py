"""The result pages (docs/results/*.md) and their index (docs/benchmarks.md): every table that
comes from committed records is generated, equal to what ``python benchmarks/results.py``
writes from the records under docs/accuracy/results/; every page is short, indexed and says
where its numbers come from."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the script is a file of the repository, not of svqcast
    sys.path.insert(0, str(ROOT))

from benchmarks import results  # noqa: E402

PAGES = sorted((ROOT / "docs" / "results").glob("*.md"))
INDEX = ROOT / "docs" / "benchmarks.md"
MAX_LINES = 600


@pytest.mark.parametrize("block", list(results.BLOCKS))
def test_every_generated_block_equals_what_the_records_give(block):
    page = results.page_of(block)
    committed = results.block_text(page.read_text(encoding="utf-8"), block)
    assert committed == results.BLOCKS[block](), (
        f"{page.relative_to(ROOT)}: block {block} differs from the committed records; "
        f"regenerate it: {results.COMMAND}"
    )


def test_the_check_command_passes_on_the_committed_pages(capsys):
    assert results.main(["--check"]) == 0
    assert capsys.readouterr().out == ""


def test_a_number_edited_by_hand_is_caught():
    pages = results.read_pages()
    page = results.page_of("accuracy/long")
    text = pages[page]
    body = results.block_text(text, "accuracy/long")
    edited = body.replace("0.574 ± 0.053", "0.570 ± 0.053", 1)
    assert edited != body
    pages[page] = text.replace(body, edited)
    assert results.stale(pages) == ["accuracy/long"]
    assert results.block_text(results.render(pages)[page], "accuracy/long") == body
    start = results.markers("accuracy/long")[0]
    pages[page] = text.replace(f"{start}\n\n", f"{start}\n", 1)  # the framing blank line
    assert results.stale(pages) == ["accuracy/long"]


def test_every_page_marker_names_a_known_block_once():
    pages = results.read_pages()
    named = [b for text in pages.values() for b in results.MARKER.findall(text)]
    assert sorted(named) == sorted(results.BLOCKS)  # each block on its page, exactly once
    page = results.page_of("accuracy/long")
    bad = dict(pages)
    bad[page] = pages[page] + "\n" + "\n".join(results.markers("accuracy/nope")) + "\n"
    with pytest.raises(LookupError, match="unknown generated block accuracy/nope"):
        results.render(bad)
    bad[page] = pages[page].replace(results.markers("accuracy/long")[1], "", 1)
    with pytest.raises(LookupError, match="accuracy/long: expected one pair of markers"):
        results.render(bad)


def test_generated_tables_do_not_depend_on_the_machine():
    """Nothing about the machine that regenerates them (the report's 'machine:' line) goes
    into a block: the same records give the same page everywhere."""
    for make in results.BLOCKS.values():
        text = make()
        assert "machine" not in text and "logical CPUs" not in text


@pytest.mark.parametrize("page", [INDEX, *PAGES], ids=lambda p: p.name)
def test_pages_stay_short(page):
    lines = len(page.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{page.relative_to(ROOT)}: {lines} lines > {MAX_LINES}"


def test_the_index_links_every_result_page():
    text = INDEX.read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(results/([^)#\s]+\.md)", text))
    assert linked == {page.name for page in PAGES}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_page_states_its_provenance_without_superseded_conclusions(page):
    """Machine, date or commit, command: a Provenance section. Replaced conclusions live in
    CHANGELOG.md, not on the pages."""
    text = page.read_text(encoding="utf-8")
    assert re.search(r"^## Provenance$", text, flags=re.M), page.name
    assert not re.search(r"supersed|\bcorrects\b", text, flags=re.I), page.name
