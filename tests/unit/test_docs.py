"""The guides stay true to the code (issue 19, item 5): every command they show is run by a test.

`tests/e2e/test_docs.py` runs the `callvault` and `python3` commands; the rest
must be listed in `tests/docs_commands.ELSEWHERE` with the test that covers
them. This file checks that list, the guides' links, and that the README stays
a page: what it is, the picture, the two commands, where to go next.
"""

from __future__ import annotations

import re

import pytest

from tests.docs_commands import ELSEWHERE, GUIDES, ROOT, every_shown_command, is_run_by_the_docs_test


def test_every_guide_is_read_in_a_known_order() -> None:
    guides = {str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")} | {"README.md"}
    assert guides <= set(GUIDES), f"guides whose commands no test runs: {sorted(guides - set(GUIDES))}"


def test_every_command_a_guide_shows_is_run_by_a_test() -> None:
    shown = every_shown_command()
    assert len(shown) >= 20, f"only {len(shown)} commands shown in the guides"
    orphans = [
        f"{s.where}: {s.command}"
        for s in shown
        if not is_run_by_the_docs_test(s) and s.command not in ELSEWHERE
    ]
    assert orphans == [], (
        "commands no test runs (run them in tests/e2e/test_docs.py or list them in ELSEWHERE)"
    )


def test_every_command_run_elsewhere_is_shown_and_names_a_test_that_exists() -> None:
    shown = {s.command for s in every_shown_command()}
    assert set(ELSEWHERE) <= shown, f"listed but shown nowhere: {sorted(set(ELSEWHERE) - shown)}"
    for command, where in ELSEWHERE.items():
        paths = re.findall(r"(?:tests/[\w/]+\.py|\.ci/run)", where)
        assert paths, f"{command}: names no test"
        for path in paths:
            assert (ROOT / path).exists(), f"{command}: {path} does not exist"
        for name in re.findall(r"::(\w+)", where):
            assert any(f"def {name}(" in (ROOT / p).read_text() for p in paths), f"{command}: no test {name}"


@pytest.mark.parametrize("guide", GUIDES)
def test_the_links_of_each_guide_lead_somewhere(guide: str) -> None:
    path = ROOT / guide
    if not path.exists():
        pytest.skip(f"{guide} is not written")
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if "://" in target:
            continue
        assert (path.parent / target).exists(), f"{guide} links to {target}, which does not exist"


def test_the_readme_fits_on_a_few_screens_and_points_each_reader_to_a_guide() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 100, "the README grew past a few screens: move it into docs/"
    for guide in ("producers", "coaches", "auditors", "dpo", "operators"):
        assert f"docs/{guide}.md" in readme, guide
