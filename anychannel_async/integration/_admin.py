"""The admin pages: the settings form, the page that returns to Zendesk, and error pages.

Pure HTML rendering, no I/O. Every value is escaped with `html.escape` (quotes too), whatever
its source: Zendesk's form, the administrator's input, the integration's own settings. The form's
hidden fields carry what Zendesk sent (its access token among them: Zendesk put it in this same
browser page) with the integration's signature over them, so the save handler can believe them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

__all__ = ["HIDDEN_FIELDS", "error_page", "return_page", "settings_page"]

#: What Zendesk's admin POST carries that the form hands on, in the order they are signed;
#: ``issued_at`` (seconds since the epoch) bounds the life of a form.
HIDDEN_FIELDS = (
    "metadata",
    "state",
    "return_url",
    "subdomain",
    "locale",
    "instance_push_id",
    "zendesk_access_token",
    "issued_at",
)
#: Where the settings form posts, relative to the admin page (``.../admin_ui``), so it holds
#: wherever the application is mounted.
SAVE_ACTION = "admin_ui/save"

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:40rem}"
    "label{display:block;margin:.75rem 0}input[type=text]{display:block;width:100%}"
)


def _page(title: str, body: str, locale: str | None = None) -> str:
    lang = f' lang="{escape(locale)}"' if locale else ""
    return (
        f'<!doctype html>\n<html{lang}><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def _input(kind: str, name: str, value: str, extra: str = "") -> str:
    return f'<input type="{kind}" name="{escape(name)}" value="{escape(value)}"{extra}>'


def settings_page(
    *,
    title: str,
    name: str,
    fields: Mapping[str, str],
    values: Mapping[str, str],
    hidden: Sequence[tuple[str, str]],
    signature: str,
    locale: str | None,
) -> str:
    """The form an administrator fills in: ``name`` and each admin field (labelled by
    ``fields``, pre-filled from ``values``), with the signed hidden fields."""
    name_input = _input("text", "name", name, ' required maxlength="255"')
    rows = [f"<label>Name {name_input}</label>"]
    for key, label in fields.items():
        rows.append(f"<label>{escape(label)} {_input('text', key, values.get(key, ''))}</label>")
    rows.extend(_input("hidden", key, value) for key, value in hidden)
    rows.append(_input("hidden", "signature", signature))
    rows.append('<button type="submit">Save</button>')
    form = f'<form method="post" action="{SAVE_ACTION}">\n' + "\n".join(rows) + "\n</form>"
    return _page(title, f"<h1>{escape(title)}</h1>\n{form}", locale)


def return_page(*, title: str, return_url: str, name: str, metadata: str) -> str:
    """The page after a save: posts ``name`` and ``metadata`` to Zendesk's ``return_url`` by
    itself, and with a button where scripts do not run."""
    form = (
        f'<form id="return" method="post" action="{escape(return_url)}">\n'
        f"{_input('hidden', 'name', name)}\n{_input('hidden', 'metadata', metadata)}\n"
        "<p>Saved.</p>\n"
        '<button type="submit">Back to Zendesk</button>\n</form>\n'
        '<script>document.getElementById("return").submit();</script>'
    )
    return _page(title, form)


def error_page(*, title: str, message: str) -> str:
    """A page saying what went wrong and what to do, and nothing Zendesk sent."""
    return _page(title, f"<h1>{escape(title)}</h1>\n<p>{escape(message)}</p>")
