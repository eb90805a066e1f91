"""What a user agent implies (crawler.browser.client_hints): the client hints and
``navigator.platform`` derived from a user agent string alone.  The expected brand
lists are real browsers' ``Sec-CH-UA`` headers and Chromium's own unit tests, not
this module's algorithm run twice."""

from __future__ import annotations

import pytest

from crawler.browser.client_hints import BrandVersion, navigator_platform, user_agent_metadata
from tests.crawler.browser.user_agents import (
    ANDROID,
    ANDROID_REDUCED,
    CHROME_IOS,
    CHROME_OS,
    EDGE,
    FIREFOX,
    FIREFOX_MAC,
    LINUX,
    MAC,
    SAFARI,
    SAFARI_IPHONE,
    WINDOWS,
)


def chrome_ua(major: int) -> str:
    return WINDOWS.replace("Chrome/130.", f"Chrome/{major}.")


@pytest.mark.parametrize(("major", "sec_ch_ua"), [
    (120, '"Not_A Brand";v="8", "Chromium";v="120", "Google Chrome";v="120"'),
    (129, '"Google Chrome";v="129", "Not=A?Brand";v="8", "Chromium";v="129"'),
    (130, '"Chromium";v="130", "Google Chrome";v="130", "Not?A_Brand";v="99"'),
    (131, '"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"'),
    (151, '"Not=A?Brand";v="99", "Google Chrome";v="151", "Chromium";v="151"'),
    (153, '"Google Chrome";v="153", "Not_A Brand";v="8", "Chromium";v="153"'),
])  # fmt: skip
def test_a_chrome_user_agent_gets_the_brands_google_chrome_of_that_version_sends(major, sec_ch_ua):
    """The GREASE brand's name, its version and the order of the three brands are
    Chromium's for the major version: Sec-CH-UA as Google Chrome sent it."""
    metadata = user_agent_metadata(chrome_ua(major))
    assert metadata is not None
    assert metadata.headers()["sec-ch-ua"] == sec_ch_ua


def test_the_grease_brand_is_chromium_s_for_its_unit_tests_seeds():
    """Chromium's user_agent_utils unittest: seed 84 gives "Not;A=Brand" v8 first,
    Chromium second; seed 86 "Not?A_Brand" v24.  Chromium 156 itself sent
    "Not:A-Brand";v="8" (measured here)."""
    assert user_agent_metadata(chrome_ua(84)).brands == (
        BrandVersion("Not;A=Brand", "8"),
        BrandVersion("Chromium", "84"),
        BrandVersion("Google Chrome", "84"),
    )
    assert BrandVersion("Not?A_Brand", "24") in user_agent_metadata(chrome_ua(86)).brands
    assert BrandVersion("Not:A-Brand", "8") in user_agent_metadata(LINUX).brands


def test_a_windows_chrome_user_agent_gets_windows_hints_on_a_64_bit_x86():
    metadata = user_agent_metadata(WINDOWS)
    assert metadata is not None
    assert metadata.to_cdp() == {
        "brands": [
            {"brand": "Chromium", "version": "130"},
            {"brand": "Google Chrome", "version": "130"},
            {"brand": "Not?A_Brand", "version": "99"},
        ],
        "fullVersionList": [
            {"brand": "Chromium", "version": "130.0.0.0"},
            {"brand": "Google Chrome", "version": "130.0.0.0"},
            {"brand": "Not?A_Brand", "version": "99.0.0.0"},
        ],
        "fullVersion": "130.0.0.0",
        "platform": "Windows",
        "platformVersion": "10.0.0",
        "architecture": "x86",
        "model": "",
        "mobile": False,
        "bitness": "64",
        "wow64": False,
        "formFactors": ["Desktop"],
    }
    assert metadata.headers() == {
        "sec-ch-ua": '"Chromium";v="130", "Google Chrome";v="130", "Not?A_Brand";v="99"',
        "sec-ch-ua-mobile": "?0",
        "sec-ch-ua-platform": '"Windows"',
    }
    assert navigator_platform(WINDOWS) == "Win32"


@pytest.mark.parametrize(("user_agent", "expected"), [
    (MAC, ("macOS", "10.15.7", "x86", "64", False, "", False)),
    (ANDROID, ("Android", "14.0.0", "", "", True, "Pixel 8", False)),
    (ANDROID_REDUCED, ("Android", "10.0.0", "", "", True, "K", False)),
    (LINUX, ("Linux", "", "x86", "64", False, "", False)),
    (LINUX.replace("x86_64", "aarch64"), ("Linux", "", "arm", "64", False, "", False)),
    (CHROME_OS, ("Chrome OS", "14541.0.0", "x86", "64", False, "", False)),
    (WINDOWS.replace("Win64; x64", "WOW64"), ("Windows", "10.0.0", "x86", "64", False, "", True)),
    (WINDOWS.replace("Windows NT 10.0; Win64; x64", "Windows NT 6.1"), ("Windows", "0.1.0", "x86", "32", False, "", False)),
])  # fmt: skip
def test_the_platform_token_gives_platform_version_cpu_mobile_and_model(user_agent, expected):
    """Android reports no architecture or bitness and its model without the build;
    Linux no version (Chromium reduces it); Windows the API contract version."""
    m = user_agent_metadata(user_agent)
    assert m is not None
    assert (m.platform, m.platform_version, m.architecture, m.bitness, m.mobile, m.model, m.wow64) == expected
    assert m.form_factors == (("Mobile",) if m.mobile else ("Desktop",))
    assert m.headers()["sec-ch-ua-mobile"] == ("?1" if m.mobile else "?0")
    assert m.headers()["sec-ch-ua-platform"] == f'"{m.platform}"'


@pytest.mark.parametrize(("user_agent", "platform"), [
    (WINDOWS, "Win32"),
    (MAC, "MacIntel"),
    (ANDROID, "Linux armv8l"),
    (LINUX, "Linux x86_64"),
    (CHROME_OS, "Linux x86_64"),
    (FIREFOX, "Win32"),
    (FIREFOX_MAC, "MacIntel"),
    (SAFARI, "MacIntel"),
    (SAFARI_IPHONE, "iPhone"),
    ("TestBot/1.0 (like Mozilla)", ""),
    ("curl/8.5.0", ""),
])  # fmt: skip
def test_navigator_platform_follows_the_user_agent_of_any_browser(user_agent, platform):
    assert navigator_platform(user_agent) == platform


@pytest.mark.parametrize("user_agent", [FIREFOX, FIREFOX_MAC, SAFARI, SAFARI_IPHONE, CHROME_IOS, "TestBot/1.0", ""])
def test_a_user_agent_that_is_not_chromium_s_has_no_client_hints(user_agent):
    """Firefox, Safari and Chrome on iOS (WebKit) send no Sec-CH-UA."""
    assert user_agent_metadata(user_agent) is None


def test_the_full_versions_are_the_user_agent_s_unless_the_browser_s_build_is_known():
    """A reduced user agent gives x.0.0.0; the browser's build replaces it when it has
    the user agent's major version, and is ignored otherwise (it would contradict it)."""
    assert user_agent_metadata(LINUX).full_version == "156.0.0.0"
    built = user_agent_metadata(LINUX, full_version="156.0.8078.129")
    assert built.full_version == "156.0.8078.129"
    assert {b.brand: b.version for b in built.full_version_list} == {
        "Not:A-Brand": "8.0.0.0",
        "Chromium": "156.0.8078.129",
        "Google Chrome": "156.0.8078.129",
    }
    assert {b.brand: b.version for b in built.brands} == {"Not:A-Brand": "8", "Chromium": "156", "Google Chrome": "156"}
    assert user_agent_metadata(LINUX, full_version="155.0.7000.1").full_version == "156.0.0.0"
    assert user_agent_metadata(ANDROID).full_version == "120.0.6099.230"


def test_an_edge_user_agent_names_edge_with_its_own_version():
    m = user_agent_metadata(EDGE)
    assert m is not None
    assert m.headers()["sec-ch-ua"] == '"Chromium";v="130", "Microsoft Edge";v="130", "Not?A_Brand";v="99"'
    assert BrandVersion("Microsoft Edge", "130.0.2849.68") in m.full_version_list
    assert m.full_version == "130.0.2849.68"


def test_no_brand_says_headless():
    """A user agent still saying HeadlessChrome gets Chrome's brands, not a HeadlessChrome one."""
    m = user_agent_metadata(LINUX.replace("Chrome/", "HeadlessChrome/"))
    assert m is not None
    assert "Headless" not in repr(m.to_cdp()) and "Headless" not in repr(m.headers())
