"""A browser context's session state over CDP: read it from a tab after a login, put
it into a new context instead of one.  The format is :mod:`crawler.browser.storage_state`'s.

**Which origins' localStorage.**  Cookies are the whole context's
(``Storage.getCookies``), but localStorage is read through a document of its origin:
``DOMStorage.getDOMStorageItems`` answers only for an origin with a frame in the tab
("Frame not found for the given storage id" otherwise, measured on Chromium 156).
So the origins read are those of the tab's frames when the login has ended (its main
frame and the frames in its process, ``Page.getFrameTree``): the page a login ends
on is the site the crawl works on.  An origin the login passed through and left (a
single sign-on's) is not read: loading one of its documents again would be a request
to that site, or an interception fighting the tab's own, and such an origin keeps
its part of the login in cookies, which are saved for every domain.

**Restoring.**  Cookies go in at once (``Storage.setCookies`` with the context's id).
localStorage cannot be written to an origin without a document of it either, so each
tab of the restored context gets a script that runs before any of the page's own in
every new document (``Page.addScriptToEvaluateOnNewDocument``): on an origin of the
state whose localStorage is empty, it writes the saved items.  Empty means not yet
restored in this context (a new context starts with nothing), so the items are
written once per origin and never over what the site wrote since; two tabs opening
the origin together write the same items.  Measured: the command takes 1-2 ms once
the tab's Page domain is on; the navigate-and-set alternative costs a page load per
origin and context.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import cdp
from crawler.browser.storage_state import from_cdp_cookies, to_cdp_cookies

log = logging.getLogger(__name__)


async def read_state(tab: cdp.Tab) -> dict[str, Any]:
    """The state of ``tab``'s context now: every cookie of the context, and the
    localStorage of the origins of the tab's frames (see the module docstring).
    Raises the tab's or the browser's CDP error; reads only, so safe to cancel."""
    browser = tab.context.browser
    cookies = (await browser.send("Storage.getCookies", browserContextId=tab.context.id)).get("cookies", [])
    origins = []
    for origin in _frame_origins((await tab.send("Page.getFrameTree"))["frameTree"]):
        try:
            reply = await tab.send(
                "DOMStorage.getDOMStorageItems", storageId={"securityOrigin": origin, "isLocalStorage": True}
            )
        except cdp.ProtocolError as exc:  # the frame went away meanwhile: its origin is left out
            log.debug("localStorage of %s not read: %s", origin, exc)
            continue
        items = [{"name": name, "value": value} for name, value in reply.get("entries", [])]
        if items:
            origins.append({"origin": origin, "localStorage": items})
    return {"cookies": from_cdp_cookies(cookies), "origins": origins}


def _frame_origins(tree: dict[str, Any]) -> list[str]:
    """The http(s) origins of a frame tree, each once, the main frame's first."""
    found: list[str] = []
    pending = [tree]
    while pending:
        node = pending.pop(0)
        origin = node.get("frame", {}).get("securityOrigin", "")
        if origin.startswith(("http://", "https://")) and origin not in found:
            found.append(origin)
        pending.extend(node.get("childFrames", []))
    return found


async def restore_cookies(context: cdp.BrowserContext, state: dict[str, Any]) -> int:
    """Set the state's cookies in ``context`` (one command; if Chromium refuses the
    batch, each cookie alone, the ones it refuses left out).  Returns how many were
    set.  Raises the browser's CDP error but Chromium's refusal of a cookie."""
    params = to_cdp_cookies(state.get("cookies", ()))
    if not params:
        return 0
    try:
        await context.browser.send("Storage.setCookies", cookies=params, browserContextId=context.id)
        return len(params)
    except cdp.ProtocolError:
        pass  # a cookie Chromium will not take (SameSite=None without Secure...): the others still go in
    set_ = 0
    for param in params:
        try:
            await context.browser.send("Storage.setCookies", cookies=[param], browserContextId=context.id)
            set_ += 1
        except cdp.ProtocolError:
            pass
    log.warning("%d of %d saved cookies were refused by Chromium", len(params) - set_, len(params))
    return set_


def local_storage_script(state: dict[str, Any]) -> str | None:
    """The script that restores the state's localStorage in each new document (see
    the module docstring); None if it has none."""
    saved = {o["origin"]: [[i["name"], i["value"]] for i in o["localStorage"]] for o in state.get("origins", ())}
    saved = {origin: items for origin, items in saved.items() if items}
    if not saved:
        return None
    return (
        "(() => { try {"
        f" const items = ({json.dumps(saved)})[location.origin];"
        " if (items && localStorage.length === 0) { for (const [k, v] of items) localStorage.setItem(k, v); }"
        " } catch (e) {} })();"
    )


async def add_script(tab: cdp.Tab, source: str) -> str:
    """Run ``source`` in every new document of ``tab``, before the page's scripts;
    returns its identifier (for :func:`remove_script`)."""
    return (await tab.send("Page.addScriptToEvaluateOnNewDocument", source=source))["identifier"]


async def remove_script(tab: cdp.Tab, identifier: str) -> None:
    await tab.send("Page.removeScriptToEvaluateOnNewDocument", identifier=identifier)


async def clear_state(tab: cdp.Tab, state: dict[str, Any]) -> None:
    """Take a restored state out of ``tab``'s context again (its check failed: the
    login runs on a clean context): every cookie of the context, and the localStorage
    of the state's origins.  Raises the tab's or the browser's CDP error."""
    context = tab.context
    await context.browser.send("Storage.clearCookies", browserContextId=context.id)
    for origin in state.get("origins", ()):
        await tab.send("Storage.clearDataForOrigin", origin=origin["origin"], storageTypes="local_storage")
