"""A stand-in for the Compose deployment's browser container, faithful where it matters.

``docker/docker-compose.yml`` runs the crawler with ``--cdp-url http://chromium:9222``
against ``chromedp/headless-shell``, in which Chromium's DevTools listens on the
container's own 127.0.0.1 and socat forwards the container's port 9222 to it.  Here:

- Chromium is started with DevTools on 127.0.0.1 (a port of its own), as there;
- a TCP forwarder (:class:`tests.faults.proxy.CdpProxy`, the test's socat) listens on
  port 9222 of an address of the container's own on the loopback network (a random
  127.x.y.z, so that nothing else on the machine is at that address and port), and
  passes every byte through untouched, the Host header included;
- the service name ``chromium`` resolves to that address only where the test says so:
  in the test process through trio's custom hostname resolver (:meth:`use_name`), in a
  crawler subprocess through a private mount namespace in which ``/etc/hosts`` has one
  line more (:meth:`name_wrapper`).  The machine's ``/etc/hosts`` is never touched.

What Chromium sees is what it sees in Compose: a connection from the forwarder,
carrying the Host header the client chose.  :meth:`stop` is the container stopped
hard (its process group killed, its forwarder gone with it); :meth:`start` again is
the restart that ``restart: unless-stopped`` does.
"""

from __future__ import annotations

import random
import socket
from functools import partial
from pathlib import Path

import attrs
import trio
import yaml

import cdp
from tests.cdp.conftest import ChromiumProcesses, free_port
from tests.faults.proxy import CdpProxy

SERVICE_NAME = "chromium"
SERVICE_PORT = 9222
# docker-compose.yml's --cdp-url: tests/test_docker_files.py checks that they agree.
SERVICE_URL = f"http://{SERVICE_NAME}:{SERVICE_PORT}"
COMPOSE_FILE = Path(__file__).resolve().parent.parent / "docker" / "docker-compose.yml"


def compose_crawler_args(config: Path) -> list[str]:
    """The arguments docker-compose.yml gives ``python -m crawler``, with ``--config``
    pointed at ``config``: the container tests run the deployment's own command."""
    command = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["crawler"]["command"]
    assert command[:3] == ["python", "-m", "crawler"], command
    args = list(command[3:])
    args[args.index("--config") + 1] = str(config)
    return args


class NameResolver(trio.abc.HostnameResolver):
    """The system's resolver, with some names mapped to addresses first (a DNS of the
    test's own, as Compose's is for service names)."""

    def __init__(self, names: dict[str, str]):
        self.names = names

    async def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002 - socket's names
        name = host.decode() if isinstance(host, bytes) else host
        resolved = self.names.get(name, host)
        lookup = partial(socket.getaddrinfo, resolved, port, family, type, proto, flags)
        return await trio.to_thread.run_sync(lookup, abandon_on_cancel=True)

    async def getnameinfo(self, sockaddr, flags):
        return await trio.to_thread.run_sync(socket.getnameinfo, sockaddr, flags, abandon_on_cancel=True)


def _container_address() -> str:
    """A loopback address other than 127.0.0.1 (Linux routes all of 127/8 to lo)."""
    return f"127.{random.randint(1, 254)}.{random.randint(0, 254)}.{random.randint(1, 254)}"


@attrs.define(eq=False)
class ChromiumContainer:
    """The ``chromium`` service: start, stop (hard), start again.  Every Chromium it
    started is killed and reaped by ``processes.stop_all()`` at the latest."""

    processes: ChromiumProcesses
    nursery: trio.Nursery
    address: str = attrs.field(factory=_container_address)
    name: str = SERVICE_NAME
    port: int = SERVICE_PORT
    chromium: trio.Process | None = None
    forwarder: CdpProxy | None = None
    forwarders: list[CdpProxy] = attrs.field(factory=list)  # every forwarder, one per start
    _scope: trio.CancelScope | None = None

    @property
    def url(self) -> str:
        """The service's DevTools endpoint by name, as the crawler is given it."""
        return f"http://{self.name}:{self.port}"

    async def start(self) -> None:
        """Start Chromium (DevTools on 127.0.0.1) and the forwarder in front of it; returns
        once the forwarder listens (Chromium may take a moment more to answer)."""
        assert self.chromium is None, "already running"
        devtools_port = free_port()
        self.chromium = await self.processes.start(devtools_port)
        self.forwarder = CdpProxy(devtools_port, host=self.address, port=self.port)
        self.forwarders.append(self.forwarder)
        self._scope = trio.CancelScope()
        await self.nursery.start(self._run_forwarder, self.forwarder, self._scope)

    async def close_startup_tabs(self, timeout_s: float = 20.0) -> None:
        """Wait until the browser answers through the forwarder, and close the tab it
        opened at start (in its default context), so that every page the browser holds
        afterwards is a client's.  Needs :meth:`use_name`."""
        with trio.fail_after(timeout_s):
            async with cdp.connect(self.url, timeout_s=timeout_s) as browser:
                for target in await browser.targets():
                    if target.type == "page":
                        await browser.send("Target.closeTarget", targetId=target.target_id)

    @staticmethod
    async def _run_forwarder(
        forwarder: CdpProxy, scope: trio.CancelScope, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        with scope:
            await forwarder.serve(task_status=task_status)

    async def stop(self) -> None:
        """The container stopped hard: the forwarder stops listening and cuts its
        connections, Chromium's whole process group is SIGKILLed and reaped.  Idempotent."""
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None
        if self.chromium is not None:
            await self.processes.kill(self.chromium)
            self.chromium = None

    def websocket_handshakes(self) -> list[list[str]]:
        """The request heads of the websocket handshakes relayed, per start."""
        heads = [[link.head.decode("latin-1") for link in forwarder.history] for forwarder in self.forwarders]
        return [[head for head in start if "upgrade: websocket" in head.lower()] for start in heads]

    def use_name(self) -> None:
        """Make the service name resolve to the container's address in this trio run."""
        trio.socket.set_custom_hostname_resolver(NameResolver({self.name: self.address}))

    def name_wrapper(self, folder: Path) -> list[str]:
        """An argv prefix that runs a command in a private mount namespace where
        ``/etc/hosts`` (the machine's, plus the service name) resolves the name."""
        hosts = folder / "hosts"
        hosts.write_text(Path("/etc/hosts").read_text() + f"\n{self.address} {self.name}\n")
        return ["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts)]
