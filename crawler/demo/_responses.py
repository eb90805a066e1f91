"""The demo's responses: HTML, JSON, redirects, 404s, and pages of a JSON list."""

from __future__ import annotations

import json
from typing import Any

from ..httpserver import HttpRequest, Response
from ._data import page_of
from ._data import pages as page_count

NOT_FOUND_PAGE = b"<h1>Not found</h1>"


def html(text: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(body=text.encode(), headers=headers)


def json_response(value: Any) -> Response:
    return Response(body=json.dumps(value, ensure_ascii=False).encode(), content_type="application/json")


def redirect(location: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status=303, headers=(("Location", location), *headers))


def not_found() -> Response:
    return Response(status=404, body=NOT_FOUND_PAGE)


def page_number(request: HttpRequest) -> int | None:
    """``?page=N`` (N >= 1; absent: 1), None if it is not a page number."""
    text = request.query.get("page", ["1"])[0]
    return int(text) if text.isdigit() and int(text) >= 1 else None


def api_page(request: HttpRequest, key: str, entries: list[Any], per_page: int) -> Response:
    """``{key: [...], "page": n, "pages": total}``, 404 past the last page."""
    page = page_number(request)
    shown = page_of(entries, page, per_page) if page else None
    if shown is None:
        return not_found()
    return json_response({key: shown, "page": page, "pages": page_count(len(entries), per_page)})
