"""A griffe extension for the API reference (mkdocs.yml loads it).

The docstrings are written in reST, the site in Markdown.  Before a docstring is
rendered, its Sphinx roles (``:class:`~crawler.page.page.Page```, ``:func:`open_page```...)
become code spans (``Page``, ``open_page``) and a paragraph ending in ``::`` ends in
``:`` (the indented literal block after it is a Markdown code block as it stands).
Nothing is linked, so a reference to an object the site does not render cannot break
the build.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

# :role:`target`, :role:`~dotted.target` (shown as its last part), :role:`text <target>`
ROLE = re.compile(r":(?:py:)?[a-z]+:`(~?)([^`<]*?)\s*(?:<[^`>]*>)?`")
LITERAL_INTRO = re.compile(r"(?m)(\S)::$")  # "The public surface::" -> "The public surface:"
LONE_INTRO = re.compile(r"(?m)^(\s*)::$")  # a line that is only "::" (the block follows)


def _role(match: re.Match[str]) -> str:
    short, text = match.group(1), match.group(2).strip()
    if short:
        text = text.rsplit(".", 1)[-1]
    return f"`{text}`"


def to_markdown(text: str) -> str:
    """A reST docstring's text with its roles and ``::`` literal introductions made Markdown."""
    text = ROLE.sub(_role, text)
    text = LITERAL_INTRO.sub(r"\1:", text)
    return LONE_INTRO.sub(r"\1", text)


class RestMarkup(griffe.Extension):
    """Rewrites every docstring of a loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        seen: set[int] = set()
        stack: list[griffe.Object | griffe.Alias] = [pkg]
        while stack:
            obj = stack.pop()
            if id(obj) in seen or obj.is_alias:
                continue
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = to_markdown(obj.docstring.value)
            stack.extend(obj.members.values())
