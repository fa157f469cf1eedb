#!/usr/bin/env python3
"""Check the README and the book in docs/ (Python 3 standard library only).

Fails (exit status 1, one line per problem) when:

- README.md has more than 150 lines;
- a link of docs/src/SUMMARY.md does not resolve to a file;
- a relative link in README.md or docs/src/**/*.md points to a file that does not exist
  (http(s) and mailto links are ignored, #anchors stripped);
- a page listed under the "User guide" or "Reference" parts of SUMMARY.md names a commit of
  this repository (a 7-40 character hex string that git resolves to a commit).

    python3 scripts/check-docs.py
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SRC = ROOT / "docs" / "src"
SUMMARY = SRC / "SUMMARY.md"
README_MAX_LINES = 150
USER_FACING_PARTS = ("User guide", "Reference")

# Inline links and images: [text](target) or ![alt](target "title"); the target may be <...>.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+\"[^\"]*\")?\s*\)")
# Reference definitions: [label]: target
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.MULTILINE)
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
HEX = re.compile(r"(?<![0-9A-Za-z_])[0-9a-fA-F]{7,40}(?![0-9A-Za-z_])")


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code spans (their brackets are not links)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            lines.append("")
            continue
        lines.append("" if fenced else INLINE_CODE.sub("", line))
    return "\n".join(lines)


def targets(text: str) -> list[str]:
    """Every link target of a markdown text, outside code."""
    body = prose(text)
    found = [m.group(1) for m in INLINE_LINK.finditer(body)]
    found += [m.group(1) for m in REFERENCE_DEF.finditer(body)]
    return [t[1:-1] if t.startswith("<") and t.endswith(">") else t for t in found]


def local_path(target: str) -> str | None:
    """The file part of a relative link, or None for external links and pure anchors."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//"):
        return None  # http:, https:, mailto: and any other scheme
    path = unquote(target.split("#", 1)[0].split("?", 1)[0])
    return path or None


def summary_entries() -> list[tuple[str | None, str, int]]:
    """(part, target, line number) of every link of SUMMARY.md, in order."""
    entries, part = [], None
    for number, line in enumerate(SUMMARY.read_text(encoding="utf-8").splitlines(), 1):
        heading = re.match(r"^#\s+(.*\S)\s*$", line)
        if heading:
            title = heading.group(1)
            part = None if title == "Summary" and not entries and part is None else title
            continue
        for target in targets(line):
            entries.append((part, target, number))
    return entries


def commits(candidates: set[str]) -> set[str]:
    """The candidates that name a commit of this repository (empty when git is unavailable)."""
    if not candidates:
        return set()
    try:
        inside = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--git-dir"],
            capture_output=True, text=True, check=False,
        )
    except OSError:
        print("docs: git not found; commit hashes not checked", file=sys.stderr)
        return set()
    if inside.returncode != 0:
        print("docs: not a git repository; commit hashes not checked", file=sys.stderr)
        return set()
    found = set()
    for candidate in sorted(candidates):
        result = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet",
             f"{candidate.lower()}^{{commit}}"],
            capture_output=True, text=True, check=False,
        )
        if result.returncode == 0:
            found.add(candidate)
    return found


def main() -> int:
    problems: list[str] = []
    links_checked = 0

    readme_lines = len(README.read_text(encoding="utf-8").splitlines())
    if readme_lines > README_MAX_LINES:
        problems.append(f"README.md: {readme_lines} lines, more than {README_MAX_LINES}")

    # The table of contents: every entry a file under docs/src.
    user_facing: list[Path] = []
    if not SUMMARY.is_file():
        problems.append(f"{SUMMARY.relative_to(ROOT)}: missing")
        entries = []
    else:
        entries = summary_entries()
    for part, target, number in entries:
        path = local_path(target)
        if path is None:
            continue  # an external link, or a draft chapter with an empty target
        links_checked += 1
        file = (SRC / path).resolve()
        if not file.is_file():
            problems.append(f"docs/src/SUMMARY.md:{number}: {target} is not a file")
        elif part in USER_FACING_PARTS:
            user_facing.append(file)

    # Every relative link of the README and of every page.
    pages = [README] + sorted(SRC.rglob("*.md"))
    for page in pages:
        if page == SUMMARY:
            continue  # checked above
        text = page.read_text(encoding="utf-8")
        for target in targets(text):
            path = local_path(target)
            if path is None:
                continue
            links_checked += 1
            file = (page.parent / path).resolve() if not path.startswith("/") else ROOT / path[1:]
            if not file.exists():
                problems.append(f"{page.relative_to(ROOT)}: link to {target}: no such file")

    # No commit of this repository named on a user-facing page.
    hits: dict[Path, set[str]] = {}
    for file in dict.fromkeys(user_facing):
        hits[file] = set(HEX.findall(file.read_text(encoding="utf-8")))
    named = commits(set().union(*hits.values()) if hits else set())
    for file, candidates in hits.items():
        for candidate in sorted(candidates & named):
            problems.append(
                f"{file.relative_to(ROOT)}: names commit {candidate} (user-facing pages carry no"
                " commit hashes; put them in the performance pages, benches/results/ or the"
                " development log)"
            )

    for problem in problems:
        print(f"docs: {problem}")
    print(f"docs: {len(pages)} pages, {links_checked} links checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
