"""Playwright's storage-state format (crawler.browser.storage_state): what a file must
hold, what an error says (never a value), and the cookies' way to and from CDP."""

from __future__ import annotations

import pytest

from crawler.browser.storage_state import StateError, check_state, describe, from_cdp_cookies, to_cdp_cookies

SECRET = "v4lue-n0t-t0-sh0w"

# As Playwright 1.5x writes it (context.storage_state()), partitionKey and all.
PLAYWRIGHT_STATE = {
    "cookies": [
        {
            "name": "sid",
            "value": SECRET,
            "domain": "shop.example",
            "path": "/",
            "expires": -1,
            "httpOnly": True,
            "secure": False,
            "sameSite": "Lax",
        },
        {
            "name": "pref",
            "value": "ko",
            "domain": ".shop.example",
            "path": "/",
            "expires": 1893456000.5,
            "httpOnly": False,
            "secure": True,
            "sameSite": "None",
            "partitionKey": None,
        },
    ],
    "origins": [{"origin": "https://shop.example", "localStorage": [{"name": "token", "value": SECRET}]}],
}


def test_a_playwright_state_is_taken_as_it_is_and_its_extra_keys_left_out():
    state = check_state(PLAYWRIGHT_STATE)
    assert state["origins"] == PLAYWRIGHT_STATE["origins"]
    assert state["cookies"][0] == PLAYWRIGHT_STATE["cookies"][0]
    assert "partitionKey" not in state["cookies"][1]
    assert describe(state) == "2 cookies, localStorage of 1 origin"


def test_missing_optional_keys_take_playwrights_defaults():
    """A hand-written file may give only name, value and domain; origins may be absent."""
    state = check_state({"cookies": [{"name": "sid", "value": "x", "domain": "shop.example"}]})
    assert state == {
        "cookies": [
            {
                "name": "sid",
                "value": "x",
                "domain": "shop.example",
                "path": "/",
                "expires": -1,
                "httpOnly": False,
                "secure": False,
                "sameSite": "Lax",
            }
        ],
        "origins": [],
    }


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ([1, 2], "expected a JSON object with cookies and origins, got a list"),
        ({"origins": []}, "no cookies list"),
        ({"cookies": {}}, "cookies: expected a list, got an object"),
        ({"cookies": [], "origins": "x"}, "origins: expected a list, got a string"),
        ({"cookies": [SECRET]}, "cookies[0]: expected an object, got a string"),
        ({"cookies": [{"name": "a", "value": SECRET}]}, "cookies[0]: no domain"),
        ({"cookies": [{"name": "a", "value": 5, "domain": "d"}]}, "cookies[0].value: expected a string, got a number"),
        ({"cookies": [{"name": "a", "value": SECRET, "domain": "d", "expires": "never"}]}, "cookies[0].expires:"),
        ({"cookies": [{"name": "a", "value": SECRET, "domain": "d", "httpOnly": 1}]}, "cookies[0].httpOnly:"),
        ({"cookies": [{"name": "a", "value": SECRET, "domain": "d", "sameSite": "lax"}]}, "cookies[0].sameSite:"),
        ({"cookies": [], "origins": [{"origin": "shop.example"}]}, "origins[0].origin: expected an http(s)"),
        (
            {"cookies": [], "origins": [{"origin": "https://a.example", "localStorage": [{"name": "t", "value": 1}]}]},
            "origins[0].localStorage[0].value: expected a string",
        ),
    ],
)
def test_what_is_wrong_is_named_without_any_value(data, said):
    with pytest.raises(StateError) as caught:
        check_state(data)
    assert said in str(caught.value)
    assert SECRET not in str(caught.value)


def test_cdp_cookies_become_playwrights_and_back_keeping_host_only_cookies_host_only():
    """Storage.getCookies' cookies in Playwright's form (a session cookie's expires is
    -1, a missing sameSite is Lax); back to Storage.setCookies, a host's own cookie is
    set by url (so it stays host-only) and a domain cookie by domain; a session
    cookie gets no expires."""
    cdp_cookies = [
        {"name": "sid", "value": "a", "domain": "shop.example", "path": "/", "expires": -1, "session": True,
         "httpOnly": True, "secure": True, "sameSite": "Strict", "size": 4, "priority": "Medium"},
        {"name": "pref", "value": "b", "domain": ".shop.example", "path": "/x", "expires": 1893456000.5,
         "session": False, "httpOnly": False, "secure": False},
    ]  # fmt: skip
    state = from_cdp_cookies(cdp_cookies)
    assert state == [
        {"name": "sid", "value": "a", "domain": "shop.example", "path": "/", "expires": -1, "httpOnly": True,
         "secure": True, "sameSite": "Strict"},
        {"name": "pref", "value": "b", "domain": ".shop.example", "path": "/x", "expires": 1893456000.5,
         "httpOnly": False, "secure": False, "sameSite": "Lax"},
    ]  # fmt: skip
    assert to_cdp_cookies(state) == [
        {"name": "sid", "value": "a", "path": "/", "secure": True, "httpOnly": True, "sameSite": "Strict",
         "url": "https://shop.example/"},
        {"name": "pref", "value": "b", "path": "/x", "secure": False, "httpOnly": False, "sameSite": "Lax",
         "expires": 1893456000.5, "domain": ".shop.example"},
    ]  # fmt: skip
