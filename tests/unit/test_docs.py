"""The guides stay true to the code (issue 19, item 5): every command they show is run by a test.

`tests/e2e/test_docs.py` runs the `callvault` and `python3` commands; the rest
must be listed in `tests/docs_commands.ELSEWHERE` with the test that covers
them. This file checks that list, the guides' links, and that the README stays
a page: what it is, the picture, the two commands, where to go next.
"""

from __future__ import annotations

import re

import pytest
from prometheus_client import REGISTRY

import callvault.observability.metrics  # noqa: F401 - registers every metric
from callvault.api.app import create_app, create_ops_app
from callvault.api.views import NO_RECORDING
from callvault.cli import reference
from callvault.contract.schemas import all_schemas
from callvault.rules.call_state import Outcome
from callvault.settings import Settings
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


def test_the_generated_sections_are_what_the_code_writes() -> None:
    """The command table and the contract's topics and fields (`make docs` writes them)."""
    stale = [str(p) for p, (now, fresh) in reference.rendered_pages().items() if now != fresh]
    assert stale == [], f"{stale} differ from the code: run `make docs`"


def test_the_command_reference_names_what_main_left_out() -> None:
    """On main docs/commands.md lacked purge --limit, demo --timeout, --wait, export-link --purpose/--by."""
    page = (ROOT / "docs" / "commands.md").read_text()
    for option in ("--limit", "--timeout", "--wait", "--purpose", "--by", "--root"):
        assert f"`{option}" in page, option


def test_the_contract_is_in_the_repository_with_every_outcome_and_type() -> None:
    """On main the README pointed outside the repository for the contract."""
    contract = (ROOT / "docs" / "contract.md").read_text()
    assert "../shared" not in (ROOT / "README.md").read_text() + (ROOT / "docs" / "producers.md").read_text()
    for outcome in Outcome:
        assert f"| `{outcome.value}` |" in contract, f"the outcome table lacks {outcome.value}"
    for name in all_schemas():
        assert f"#### `{name.split('/')[1].removesuffix('.json')}`" in contract, name


def _guides_text() -> str:
    return "\n".join((ROOT / g).read_text() for g in GUIDES if (ROOT / g).exists())


def _code_text() -> str:
    paths = [*ROOT.glob("services/**/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/*.py")]
    return "\n".join(p.read_text() for p in [*paths, ROOT / "Makefile"])


def test_every_setting_is_in_the_operators_guide_and_every_variable_the_guides_name_is_read() -> None:
    """On main five settings were only abbreviated (`/ _RECORDINGS_BUCKET`) or missing."""
    settings = {f"CALLVAULT_{name.upper()}" for name in Settings.model_fields}
    operators = (ROOT / "docs" / "operators.md").read_text()
    assert sorted(s for s in settings if s not in operators) == [], "settings the operators' guide lacks"
    code = _code_text()
    named = set(re.findall(r"CALLVAULT_[A-Z0-9_]*[A-Z0-9]_?", _guides_text()))
    unread = [n for n in named if n not in settings and n not in code]  # `CALLVAULT_TEST_`: a prefix
    assert sorted(unread) == [], "variables the guides name that neither Settings nor any code reads"


def _route_pattern(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{\w+\\\}", r"[^/?\\s]+", re.escape(path)) + r"$")


def test_every_route_is_documented_and_every_route_the_guides_name_exists() -> None:
    """On main `GET /api/v1/audio/{link}` was nowhere, and the DPO's guide wrote `{id}`."""
    app = create_app(Settings())
    routes = {r.path for r in app.routes if hasattr(r, "path") and r.path != "/static"}
    ops = {r.path for r in create_ops_app(app).routes if hasattr(r, "path")}
    text = _guides_text()
    assert sorted(r for r in routes | ops if f"{r}" not in text) == [], "routes no guide names"
    patterns = [_route_pattern(r) for r in routes]
    for named in set(re.findall(r"/api/v1/[A-Za-z0-9_{}/.-]*[A-Za-z0-9_}]", text)):
        assert any(p.match(named) for p in patterns), f"the guides name {named}, which the API does not serve"


def test_every_metric_is_in_the_operators_guide_and_every_metric_the_guides_name_exists() -> None:
    """On main `callvault_policy_versions_known` was undocumented."""
    metrics = set()
    for family in REGISTRY.collect():
        if family.name.startswith("callvault_"):
            metrics.add(family.name + ("_total" if family.type == "counter" else ""))
    operators = (ROOT / "docs" / "operators.md").read_text()
    assert sorted(m for m in metrics if f"`{m}`" not in operators) == [], "metrics the operators' guide lacks"
    for named in set(re.findall(r"\bcallvault_[a-z0-9_]+", _guides_text())):
        known = metrics | {f"{m}_bucket" for m in metrics} | {f"{m}_count" for m in metrics}
        assert named in known, f"the guides name the metric {named}, which callvault does not export"


def test_the_pages_outcome_filter_offers_every_outcome() -> None:
    """On main the coaches' page lacked source_unreadable and recording_not_allowed."""
    page = (ROOT / "services" / "callvault" / "api" / "web" / "index.html").read_text()
    offered = set(re.findall(r'<option value="(\w+)"', page))
    assert {o.value for o in Outcome} | {NO_RECORDING} <= offered
