"""MkDocs hook: render the Sphinx roles of the docstrings as plain code.

The docstrings cross-reference with Sphinx roles (``:class:`~pkg.mod.Name```, ``:meth:`x```),
which Markdown renders as the role's name followed by code. This hook drops the role and, as
Sphinx does for a leading ``~``, keeps only the last dotted part of the target.
"""

import re

ROLE = re.compile(r":(?:class|meth|func|attr|exc|mod|data|obj):<code>(~?)([^<]*)</code>")


def _code(match: re.Match) -> str:
    target = match.group(2).rsplit(".", 1)[-1] if match.group(1) else match.group(2)
    return f"<code>{target}</code>"


def on_page_content(html: str, **kwargs) -> str:
    return ROLE.sub(_code, html)
