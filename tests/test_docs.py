"""The documentation against the repository: every relative link reaches a file and heading that
exist, every `make` target named is one the Makefile has, and the configuration page documents
exactly the keys the program reads (components/config.py's CONFIG_KEYS, which the parser uses)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from components.config import CONFIG_KEYS, parse_config

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CONFIGURATION = REPO / "docs" / "configuration.md"
NAMESPACE = "linkerd-mesh"

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
# A Makefile rule line: its targets before a single colon (not `:=` or `::`), not a recipe line.
RULE = re.compile(r"^([A-Za-z0-9_.-]+(?:[ \t]+[A-Za-z0-9_.-]+)*)[ \t]*:(?![:=])", re.MULTILINE)
# The first word after `make` that is not a VAR=value argument.
MAKE_GOAL = re.compile(r"(?:^|\s)make((?:\s+[A-Z_]+=\S*)*)\s+([a-z][-a-z0-9]*)\b")
# A key written as docs/configuration.md's table writes it: `linkerd.version`, `clusters.<name>.region`.
# (`linkerd.py` and `identity.py` are modules, not keys.)
DOTTED_KEY = re.compile(r"^(clusters\.<name>|links\[\]|exports\[\]|linkerd|identity)\.(?!(?:py|md|yaml)$)([A-Za-z]+)$")


def documented_name(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


PROGRAM_KEYS = {documented_name(section, key) for section, keys in CONFIG_KEYS.items() for key in keys}
# A setting written inline, as in `controlPlaneHa: true`: camelCase only, since lowercase ones
# are also other tools' (`queue: max` is a GitHub workflow's).
INLINE_SETTING = re.compile(r"^([a-z]+[A-Z][A-Za-z]*): \S")


def split(text: str) -> tuple[list[str], list[str]]:
    """(prose lines, fenced code lines) of a Markdown page."""
    prose, code, fenced = [], [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced:
            code.append(line)
        else:
            prose.append(line)
    return prose, code


def github_anchor(heading: str) -> str:
    """GitHub's heading ids: lowercase, punctuation dropped (hyphens and underscores stay), spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: Counter[str] = Counter()
    found = set()
    for line in split(page.read_text())[0]:
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            anchor = github_anchor(match.group(1))
            # A repeated heading gets -1, -2, ... as GitHub numbers them.
            found.add(f"{anchor}-{seen[anchor]}" if seen[anchor] else anchor)
            seen[anchor] += 1
    return found


def code_spans(page: Path) -> list[str]:
    prose, code = split(page.read_text())
    return [span for line in prose for span in INLINE_CODE.findall(line)] + code


def broken_links(page: Path) -> list[str]:
    problems = []
    for line in split(page.read_text())[0]:
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # https:, mailto: and the like: not ours to check
            path, _, fragment = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                problems.append(f"{target}: no such file")
            elif fragment and fragment not in anchors(resolved):
                problems.append(f"{target}: no heading #{fragment} in {resolved.relative_to(REPO)}")
    return problems


def makefile_targets() -> set[str]:
    rules = RULE.findall((REPO / "Makefile").read_text())
    return {target for rule in rules for target in rule.split() if not target.startswith(".")}


def make_goals(page: Path) -> set[str]:
    return {match.group(2) for span in code_spans(page) for match in MAKE_GOAL.finditer(span)}


def mentioned_keys(page: Path) -> set[str]:
    """The config keys a page names: `linkerd-mesh:<key>` anywhere; in prose code spans, dotted
    keys (`identity.anchors`) and inline settings (`signingAnchor: next`, named by the key alone)."""
    text = page.read_text()
    keys = set(re.findall(rf"{NAMESPACE}:([A-Za-z]+)", text))
    for span in code_spans(page):
        match = DOTTED_KEY.match(span.strip())
        if match:
            keys.add(documented_name(*match.groups()))
    for line in split(text)[0]:
        for span in INLINE_CODE.findall(line):
            match = INLINE_SETTING.match(span)
            if match:
                keys.add(match.group(1))
    return keys


def key_table_rows(page: Path) -> list[str]:
    """The first column of the tables headed `| key |`, without its backticks."""
    rows, in_table = [], False
    for line in split(page.read_text())[0]:
        if line.startswith("| key |"):
            in_table = True
        elif in_table and line.startswith("|"):
            cell = line.strip("|").split("|")[0].strip()
            if not set(cell) <= set("- "):
                rows.append(cell.strip("`"))
        else:
            in_table = False
    return rows


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_reaches_a_file_and_heading_that_exist(page):
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_make_target_the_docs_name_is_in_the_makefile(page):
    assert make_goals(page) - makefile_targets() == set()


def test_the_pages_name_make_targets_at_all():
    # Guards the two checks above against a pattern that silently matches nothing.
    assert {"deploy", "test", "verify"} <= set().union(*map(make_goals, PAGES)) <= makefile_targets()
    assert {"deploy", "test", "help"} <= makefile_targets()


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_config_key_the_docs_name_is_one_the_program_reads(page):
    key_names = {key for keys in CONFIG_KEYS.values() for key in keys}
    assert mentioned_keys(page) - PROGRAM_KEYS - key_names == set()


def test_the_configuration_page_documents_every_key_the_program_reads_once():
    rows = key_table_rows(CONFIGURATION)
    assert [row for row, count in Counter(rows).items() if count > 1] == []
    assert PROGRAM_KEYS - set(rows) == set(), "read by the program, not documented"
    assert set(rows) - PROGRAM_KEYS == set(), "documented, not read by the program"


def test_the_configuration_example_is_a_config_the_program_accepts():
    examples = [block for block in re.findall(r"```yaml\n(.*?)```", CONFIGURATION.read_text(), re.DOTALL)]
    assert examples, "docs/configuration.md shows no YAML example"
    for example in examples:
        config = yaml.safe_load(example)["config"]
        values = {key.split(":", 1)[1]: value for key, value in config.items() if key.startswith(f"{NAMESPACE}:")}
        parse_config(values, NAMESPACE, token_available=True)  # raises on any unknown key or bad value
