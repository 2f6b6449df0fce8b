"""An administrator's browser, as far as an integration's admin UI needs one: HTML pages read
with `html.parser` into their forms, and a form filled in and submitted as a browser would.

Pure: no I/O. The emulator's `install` and the integration tests drive the admin UI with it,
so a page an ordinary browser could not use fails here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from html.parser import HTMLParser
from urllib.parse import urljoin

import attrs

__all__ = ["Form", "Page", "parse_page"]

# Inputs a browser sends as they are; a checkbox or radio only when checked, a button never
# (no button is clicked: the form is submitted as a whole).
_BUTTONS = frozenset({"submit", "button", "reset", "image"})
_CHECKED = frozenset({"checkbox", "radio"})


@attrs.define
class Form:
    """One ``<form>``: where it posts, and its inputs in page order."""

    action: str
    method: str
    id: str | None
    #: (type, name, value) of each input, in page order.
    inputs: list[tuple[str, str, str]] = attrs.field(factory=list)
    buttons: int = 0
    #: The names of the checkbox and radio inputs that are checked.
    checked: set[str] = attrs.field(factory=set)

    def values(self) -> dict[str, str]:
        """What a browser submits as the form stands: each named input's value."""
        return {
            name: value
            for kind, name, value in self.inputs
            if name and kind not in _BUTTONS and (kind not in _CHECKED or name in self.checked)
        }

    def of_type(self, kind: str) -> dict[str, str]:
        """The named inputs of one type (``text``, ``hidden``, ...) and their values."""
        return {name: value for type_, name, value in self.inputs if type_ == kind and name}

    def editable(self) -> set[str]:
        """The names an administrator can type into (neither hidden nor a button)."""
        return {
            name
            for kind, name, _ in self.inputs
            if name and kind != "hidden" and kind not in _BUTTONS | _CHECKED
        }

    def target(self, page_url: str) -> str:
        """The absolute URL the form posts to, resolved against the page's as a browser does."""
        return urljoin(page_url, self.action)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False
        self._textarea: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs_: list[tuple[str, str | None]]) -> None:
        found = {key: value or "" for key, value in attrs_}
        if tag == "form":
            self.forms.append(
                Form(
                    action=found.get("action", ""),
                    method=found.get("method", "get").lower(),
                    id=found.get("id"),
                )
            )
        elif tag == "input" and self.forms:
            kind = found.get("type", "text").lower()
            name = found.get("name", "")
            self.forms[-1].inputs.append((kind, name, found.get("value", "")))
            if kind in _CHECKED and "checked" in found:
                self.forms[-1].checked.add(name)
        elif tag == "textarea" and self.forms:
            self._textarea = (found.get("name", ""), [])
        elif tag == "button" and self.forms:
            self.forms[-1].buttons += 1
        elif tag == "script":
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False
        elif tag == "textarea" and self._textarea is not None and self.forms:
            name, parts = self._textarea
            self.forms[-1].inputs.append(("textarea", name, "".join(parts)))
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea[1].append(data)
        elif self._in_script:
            self.scripts.append(data)
        else:
            self.text.append(data)


@attrs.frozen
class Page:
    """An HTML answer as a browser reads it."""

    url: str
    status: int
    html: str
    forms: list[Form]
    scripts: list[str]
    #: The visible text, for error messages.
    text: str
    headers: Mapping[str, str]

    def posts_itself(self, form: Form) -> bool:
        """Whether a script on the page submits form as soon as it loads."""
        return form.id is not None and any(
            f'getElementById("{form.id}").submit()' in script for script in self.scripts
        )


def parse_page(url: str, status: int, html: str, headers: Mapping[str, str]) -> Page:
    """Read an HTML page into its forms, scripts and text."""
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    text = " ".join(" ".join(parser.text).split())
    return Page(url, status, html, parser.forms, parser.scripts, text, dict(headers))
