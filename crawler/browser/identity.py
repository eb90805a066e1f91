"""Applying an identity to a tab: what the site sees of the browser (user agent,
locale, timezone, headers).  Parsing an identity from the config is
:mod:`crawler.config.identity`'s; what a user agent implies (client hints,
``navigator.platform``) is :mod:`crawler.browser.client_hints`'.

The user agent goes with everything it implies, one override: the client hints
(``navigator.userAgentData``, the ``Sec-CH-UA*`` headers) and ``navigator.platform``
derived from it.  Overridden alone, Chromium would drop its client hints and keep its
own platform, and a page would see a Windows Chrome with no brands on "Linux x86_64"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

import cdp
from crawler.browser.client_hints import navigator_platform, user_agent_metadata

# Chromium never sends loopback traffic (127.0.0.1, localhost) through a proxy unless
# the bypass list removes the implicit rule: a crawl told to use a proxy uses it for
# every host, local test shops included.
PROXY_BYPASS_LIST = "<-loopback>"


@attrs.frozen
class Identity:
    """What every tab of a session presents (empty strings: the browser's own)."""

    user_agent: str = ""
    locale: str = ""
    timezone: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    # The browser's build (156.0.8078.129) when user_agent is the browser's own: the
    # client hints' full versions then say what the browser would (a user agent says 156.0.0.0).
    full_version: str = ""

    @property
    def accept_language(self) -> str:
        """The languages of ``navigator.languages`` and of the Accept-Language header,
        so that the two agree: those of a configured Accept-Language header (without
        their q-values: Chromium writes its own, 0.9, 0.8...), else the locale."""
        configured = next((v for k, v in self.headers if k.lower() == "accept-language"), "")
        languages = [part.split(";")[0].strip() for part in configured.split(",")]
        return ",".join(lang for lang in languages if lang) or self.locale


def browser_user_agent(version: Mapping[str, Any]) -> str:
    """Chromium's own user agent (``Browser.getVersion``), minus the "HeadlessChrome"
    that sites test for; "" if the browser did not say."""
    return str(version.get("userAgent", "")).replace("HeadlessChrome", "Chrome")


def browser_identity(identity: Identity, version: Mapping[str, Any]) -> Identity:
    """``identity`` presenting the browser's own user agent (:func:`browser_user_agent`)
    and its build (``Browser.getVersion``'s product, ``Chrome/156.0.8078.129``)."""
    product = str(version.get("product", ""))
    return attrs.evolve(identity, user_agent=browser_user_agent(version), full_version=product.rpartition("/")[2])


def user_agent_override(identity: Identity) -> dict[str, Any]:
    """The parameters of ``Network.setUserAgentOverride`` for ``identity``'s user agent:
    the user agent, Accept-Language, the ``navigator.platform`` it implies, and for a
    Chromium user agent its client hints (:mod:`crawler.browser.client_hints`)."""
    params: dict[str, Any] = {"userAgent": identity.user_agent}
    if identity.accept_language:
        params["acceptLanguage"] = identity.accept_language
    platform = navigator_platform(identity.user_agent)
    if platform:
        params["platform"] = platform
    metadata = user_agent_metadata(identity.user_agent, identity.full_version)
    if metadata is not None:
        params["userAgentMetadata"] = metadata.to_cdp()
    return params


async def apply_identity(tab: cdp.Tab | cdp.Session, identity: Identity) -> None:
    """Present ``identity`` on ``tab`` (per-target settings: every tab of a context
    needs them, before its first navigation).  One command per setting that is set;
    each bounded by the connection's command deadline.  Raises the tab's CDP error."""
    if identity.user_agent:  # Accept-Language rides on it (Network.setUserAgentOverride takes both)
        await tab.send("Network.setUserAgentOverride", **user_agent_override(identity))
    if identity.locale:
        await tab.send("Emulation.setLocaleOverride", locale=identity.locale)
    if identity.timezone:
        await tab.send("Emulation.setTimezoneOverride", timezoneId=identity.timezone)
    if identity.headers:
        await tab.send("Network.setExtraHTTPHeaders", headers=dict(identity.headers))
