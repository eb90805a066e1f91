"""Keys as ``Input.dispatchKeyEvent`` wants them: the ``key``, ``code``, Windows
virtual key code and typed text of the keys a handler presses by name."""

from __future__ import annotations

from typing import Any

# name -> (code, windowsVirtualKeyCode, text typed)
NAMED_KEYS: dict[str, tuple[str, int, str]] = {
    "Enter": ("Enter", 13, "\r"),
    "Tab": ("Tab", 9, ""),
    "Escape": ("Escape", 27, ""),
    "Backspace": ("Backspace", 8, ""),
    "Delete": ("Delete", 46, ""),
    "ArrowLeft": ("ArrowLeft", 37, ""),
    "ArrowUp": ("ArrowUp", 38, ""),
    "ArrowRight": ("ArrowRight", 39, ""),
    "ArrowDown": ("ArrowDown", 40, ""),
    "Home": ("Home", 36, ""),
    "End": ("End", 35, ""),
    "PageUp": ("PageUp", 33, ""),
    "PageDown": ("PageDown", 34, ""),
    " ": ("Space", 32, " "),
    "Space": ("Space", 32, " "),
}


def key_events(key: str) -> list[dict[str, Any]]:
    """The keyDown and keyUp parameters of one press of ``key``: a name of
    :data:`NAMED_KEYS` or a single character.  ValueError for anything else."""
    if key in NAMED_KEYS:
        code, vk, text = NAMED_KEYS[key]
        name = " " if key == "Space" else key
    elif len(key) == 1:
        name, text = key, key
        upper = key.upper()
        if upper.isalpha() and upper.isascii():
            code, vk = f"Key{upper}", ord(upper)
        elif key.isdigit():
            code, vk = f"Digit{key}", ord(key)
        else:
            code, vk = "", 0
    else:
        known = ", ".join(k for k in NAMED_KEYS if k != " ")
        raise ValueError(f"press: unknown key {key!r} (a single character, or one of: {known})")
    down: dict[str, Any] = {"type": "keyDown" if text else "rawKeyDown", "key": name, "code": code}
    down["windowsVirtualKeyCode"] = down["nativeVirtualKeyCode"] = vk
    if text:
        down["text"] = down["unmodifiedText"] = text
    up = {"type": "keyUp", "key": name, "code": code, "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk}
    return [down, up]
