"""What a user agent string implies about the rest of a browser's identity: the
User-Agent Client Hints (``navigator.userAgentData`` and the ``Sec-CH-UA*`` request
headers) and ``navigator.platform``, as Chromium presents them for that user agent.

Overriding only the user agent (``Network.setUserAgentOverride`` with ``userAgent``
alone) tells two stories: Chromium 156 then sends no ``Sec-CH-UA`` header at all, its
``navigator.userAgentData`` has no brands and an empty platform, and
``navigator.platform`` still says "Linux x86_64" under a Windows user agent; a real
Chrome sends the hints on every request to a secure origin.  The functions here
derive, from the user agent alone, the metadata a real browser of that user agent
would report, so that the override can carry it (:mod:`crawler.browser.identity`) and
the HTTP path can send the same headers.  Pure: no I/O, no state.

A Chromium user agent (one with a ``Chrome/`` token, not Chrome on iOS, which is
WebKit and has no client hints) gets Chromium's brand list: Chromium, the browser's
brand (Google Chrome unless the user agent names Edge, Opera or Samsung Internet),
and the GREASE brand, with their order and the GREASE brand's name and version
seeded by the major version as Chromium seeds them (``GenerateBrandVersionList`` and
``GetGreasedUserAgentBrandVersion`` in components/embedder_support/user_agent_utils.cc).
The platform, its version, the CPU's architecture and bitness, the mobile bit and an
Android device's model come from the user agent's platform token.  What a user
agent does not say is not made up: a reduced user agent (``Chrome/130.0.0.0``) gives
the full version list "130.0.0.0" (a real Chrome reports its build, 130.0.6723.117),
unless the caller knows the build (the browser's own); macOS gives the version its
user agent says (frozen at 10.15.7 since Chrome 90); Windows NT 10.0 gives "10.0.0"
(Windows 10; Windows 11 reports 13 or more, and says NT 10.0 too).

Firefox, Safari and any other user agent get no metadata (:func:`user_agent_metadata`
is None).  A real one sends no ``Sec-CH-UA`` header and has no
``navigator.userAgentData``.  Over CDP the closest is the override without metadata:
Chromium then sends no client hint header either (measured, Chromium 156), but
``navigator.userAgentData`` still exists, with no brands, mobile false and an empty
platform.  Metadata with empty brands would be worse: Chromium then sends an empty
``Sec-CH-UA``, ``Sec-CH-UA-Platform: ""``, and fills the fields left out (its own
full version, bitness) into ``getHighEntropyValues``.  Removing ``userAgentData``
would take a script injected into every page, which a site can detect in its own way.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

# Chromium's GREASE brand (the spec's "arbitrary brand"): "Not" + char + "A" + char +
# "Brand", the chars and the version picked by the major version.
GREASE_CHARS = (" ", "(", ":", "-", ".", "/", ")", ";", "=", "?", "_")
GREASE_VERSIONS = ("8", "99", "24")
# The stable permutations Chromium picks from by major version (GetRandomOrder for 3):
# item i of [GREASE, Chromium, brand] goes to position order[i].
BRAND_ORDERS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
DEFAULT_BRAND = "Google Chrome"  # a Chrome user agent is Google Chrome's far more often than Chromium's
# Chromium-based browsers that name themselves in the user agent: (token, brand).
PRODUCT_BRANDS = (
    ("Edg", "Microsoft Edge"),
    ("EdgA", "Microsoft Edge"),
    ("OPR", "Opera"),
    ("SamsungBrowser", "Samsung Internet"),
)

_CHROME = re.compile(r"Chrome/(\d+)((?:\.\d+)*)")
_PLATFORM_TOKEN = re.compile(r"\(([^)]*)\)")  # the first parenthesised part: the platform token
_WINDOWS = re.compile(r"Windows NT (\d+)\.(\d+)")
_MAC = re.compile(r"Mac OS X (\d+)[_.](\d+)(?:[_.](\d+))?")
_ANDROID = re.compile(r"Android (\d+(?:\.\d+)*)")
_CROS = re.compile(r"CrOS (\S+) (\d+(?:\.\d+)*)")
_LINUX = re.compile(r"Linux (\S+)")
# Windows' platformVersion is its Universal API contract version: 10.0.0 on Windows
# 10, 0.1/0.2/0.3 on Windows 7/8/8.1.
WINDOWS_PLATFORM_VERSIONS = {(10, 0): "10.0.0", (6, 3): "0.3.0", (6, 2): "0.2.0", (6, 1): "0.1.0"}


@attrs.frozen
class BrandVersion:
    brand: str
    version: str


@attrs.frozen
class UserAgentMetadata:
    """CDP's ``Emulation.UserAgentMetadata``: what ``navigator.userAgentData`` reports
    and the ``Sec-CH-UA*`` headers say."""

    brands: tuple[BrandVersion, ...]  # major versions: Sec-CH-UA, userAgentData.brands
    full_version_list: tuple[BrandVersion, ...]  # full versions: Sec-CH-UA-Full-Version-List
    full_version: str  # the browser brand's (the deprecated uaFullVersion)
    platform: str  # "Windows", "macOS", "Linux", "Android", "Chrome OS"
    platform_version: str
    architecture: str  # "x86", "arm", "" (Android)
    model: str  # an Android device's, else ""
    mobile: bool
    bitness: str  # "64", "32", "" (Android)
    wow64: bool
    form_factors: tuple[str, ...]

    def to_cdp(self) -> dict[str, Any]:
        """The ``userAgentMetadata`` parameter of ``*.setUserAgentOverride``, every
        field given (one left out is filled with the browser's own: its build, its
        bitness)."""
        return {
            "brands": [{"brand": b.brand, "version": b.version} for b in self.brands],
            "fullVersionList": [{"brand": b.brand, "version": b.version} for b in self.full_version_list],
            "fullVersion": self.full_version,
            "platform": self.platform,
            "platformVersion": self.platform_version,
            "architecture": self.architecture,
            "model": self.model,
            "mobile": self.mobile,
            "bitness": self.bitness,
            "wow64": self.wow64,
            "formFactors": list(self.form_factors),
        }

    def headers(self) -> dict[str, str]:
        """The low-entropy hints Chromium sends with every request to a secure origin
        (https, localhost, 127.0.0.1) unasked, formatted as Chromium formats them
        (structured-header strings and booleans)."""
        return {
            "sec-ch-ua": ", ".join(f'"{_sf_escape(b.brand)}";v="{_sf_escape(b.version)}"' for b in self.brands),
            "sec-ch-ua-mobile": "?1" if self.mobile else "?0",
            "sec-ch-ua-platform": f'"{_sf_escape(self.platform)}"',
        }


@attrs.frozen
class _System:
    """What a user agent's platform token says."""

    platform: str = ""  # userAgentData's
    platform_version: str = ""
    navigator_platform: str = ""  # navigator.platform's
    architecture: str = ""
    bitness: str = ""
    wow64: bool = False
    model: str = ""


def user_agent_metadata(user_agent: str, full_version: str = "") -> UserAgentMetadata | None:
    """The client hints a real browser with ``user_agent`` reports (see the module
    docstring); None if it is not a Chromium user agent.  ``full_version``: the
    browser's build (``156.0.8078.129``), when the caller knows it (the browser's own
    user agent); ignored unless its major version is the user agent's."""
    chrome = _CHROME.search(user_agent)
    if chrome is None or "CriOS/" in user_agent:
        return None
    major = chrome.group(1)
    seed = int(major)
    chromium_full = _full(major, chrome.group(2))
    if full_version.split(".")[0] == major and full_version.count(".") == 3:
        chromium_full = full_version
    brand, brand_major, brand_full = DEFAULT_BRAND, major, chromium_full
    for token, name in PRODUCT_BRANDS:
        product = re.search(rf"\b{token}/(\d+)((?:\.\d+)*)", user_agent)
        if product is not None:
            brand, brand_major, brand_full = name, product.group(1), _full(product.group(1), product.group(2))
            break
    grease, grease_version = _grease(seed)
    system = _system(user_agent)
    mobile = "Mobile" in user_agent
    return UserAgentMetadata(
        brands=_shuffled(seed, (grease, grease_version), ("Chromium", major), (brand, brand_major)),
        full_version_list=_shuffled(
            seed, (grease, f"{grease_version}.0.0.0"), ("Chromium", chromium_full), (brand, brand_full)
        ),
        full_version=brand_full,
        platform=system.platform,
        platform_version=system.platform_version,
        architecture=system.architecture,
        model=system.model,
        mobile=mobile,
        bitness=system.bitness,
        wow64=system.wow64,
        form_factors=("Mobile",) if mobile else ("Desktop",),
    )


def navigator_platform(user_agent: str) -> str:
    """``navigator.platform`` as a browser with ``user_agent`` reports it (any
    browser: Firefox and Safari too): "Win32", "MacIntel", "Linux x86_64", "iPhone"...;
    "" if the user agent names no platform we know."""
    return _system(user_agent).navigator_platform


def _system(user_agent: str) -> _System:
    comment = _PLATFORM_TOKEN.search(user_agent)
    token = comment.group(1) if comment is not None else ""
    if "Android" in token:
        android = _ANDROID.search(token)
        parts = [part.strip() for part in token.split(";")]
        after = next((i + 1 for i, part in enumerate(parts) if part.startswith("Android")), len(parts))
        model = parts[after].split(" Build/")[0].strip() if after < len(parts) else ""
        # Chromium on Android reports no architecture or bitness.
        return _System("Android", _dotted(android.group(1)) if android else "", "Linux armv8l", model=model)
    if "iPhone" in token or "iPad" in token or "iPod" in token:
        return _System("iOS", navigator_platform=next(d for d in ("iPhone", "iPad", "iPod") if d in token))
    if "CrOS" in token:
        cros = _CROS.search(token)
        machine, version = (cros.group(1), cros.group(2)) if cros else ("x86_64", "")
        return _System("Chrome OS", version, f"Linux {machine}", *_cpu(machine))
    if "Windows" in token:
        windows = _WINDOWS.search(token)
        version = WINDOWS_PLATFORM_VERSIONS.get((int(windows.group(1)), int(windows.group(2))), "") if windows else ""
        parts = {part.strip() for part in token.split(";")}
        wow64 = "WOW64" in parts
        bitness = "64" if wow64 or "Win64" in parts or "x64" in parts else "32"
        return _System("Windows", version, "Win32", "x86", bitness, wow64)
    if "Mac OS X" in token or "Macintosh" in token:
        mac = _MAC.search(token)
        version = ".".join(part or "0" for part in mac.groups()) if mac else ""
        return _System("macOS", version, "MacIntel", "x86", "64")  # the user agent says Intel, even on Apple's chips
    if "Linux" in token:
        linux = _LINUX.search(token)
        machine = linux.group(1) if linux else "x86_64"
        return _System("Linux", "", f"Linux {machine}", *_cpu(machine))  # Chromium reports no Linux version
    return _System()


def _cpu(machine: str) -> tuple[str, str]:
    """(architecture, bitness) of a ``uname -m`` machine name."""
    if machine in ("x86_64", "amd64"):
        return "x86", "64"
    if machine in ("aarch64", "arm64"):
        return "arm", "64"
    if machine.startswith("arm"):
        return "arm", "32"
    return "x86", "32"  # i686, i386


def _grease(seed: int) -> tuple[str, str]:
    """The GREASE brand and its major version for ``seed`` (the major version)."""
    first, second = GREASE_CHARS[seed % len(GREASE_CHARS)], GREASE_CHARS[(seed + 1) % len(GREASE_CHARS)]
    return f"Not{first}A{second}Brand", GREASE_VERSIONS[seed % len(GREASE_VERSIONS)]


def _shuffled(seed: int, *items: tuple[str, str]) -> tuple[BrandVersion, ...]:
    """[GREASE, Chromium, brand] in the order Chromium puts them for ``seed``."""
    slots: list[BrandVersion | None] = [None] * len(items)
    for (brand, version), position in zip(items, BRAND_ORDERS[seed % len(BRAND_ORDERS)], strict=True):
        slots[position] = BrandVersion(brand, version)
    return tuple(slot for slot in slots if slot is not None)


def _full(major: str, rest: str) -> str:
    """A version as Chromium writes a full one: four numbers (``130`` -> ``130.0.0.0``)."""
    parts = [major, *rest.strip(".").split(".")] if rest else [major]
    return ".".join((parts + ["0"] * 4)[:4])


def _dotted(version: str) -> str:
    """An OS version as three numbers (Android ``10`` -> ``10.0.0``), as Chromium reports it."""
    return ".".join((version.split(".") + ["0"] * 3)[:3])


def _sf_escape(value: str) -> str:
    """A structured-header string's content: backslash and quote escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"')
