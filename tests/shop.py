"""A hostile fixture shop: the demo shop's product pages, plus pages that misbehave.

Every path is ``/{kind}/{id}`` and, when it finally renders, shows product ``id`` of
the demo shop (so its data is checkable with ``demo.expected_item``):

=================  ==========================================================
``product``        a normal product page
``hang``           the server accepts the request and never answers
``slow``           answers after ``?s=`` seconds
``status``         ``/status/{code}/{id}?times=N&retry_after=S``: answers
                   ``code`` (with Retry-After) the first N times, then the page
``truncate``       closes the connection halfway through the response
``busy``           the page runs ``while(true){}`` (a hung renderer)
``oom``            the page allocates until the renderer runs out of memory
``popups``         the page opens popups in a loop, then renders
``dialogs``        the page raises alert() and confirm(), then renders
``reload``         the page reloads itself forever
``poll``           the page fetches ``/api/goods/{id + 1}`` every 20 ms, forever
``never``          the page never produces the wait_for element
``lateapi``        ``/lateapi/{id}?s=S``: the page (its h1 at once) fetches its
                   ``/api/goods/{id}?delay=S``, which answers after S seconds
=================  ==========================================================

``/api/goods/{id}?delay=S`` answers after S seconds (the demo shop's API otherwise).
"""

from __future__ import annotations

from collections import defaultdict

import attrs
import trio

from crawler.demo import PRODUCT_PAGE, DemoShop, product
from crawler.httpserver import HttpRequest, Response, serve_http

SCRIPTS = {
    "busy": "<script>setTimeout(() => { while (true) {} }, 0);</script>",
    "oom": "<script>const a = []; setTimeout(() => { while (true) a.push(new Array(1e6).fill(Math.random())); }, 0);</script>",
    "popups": "<script>for (let i = 0; i < 5; i++) window.open('/product/{id}?popup=' + i);"
    "setInterval(() => window.open('/product/{id}?popup=late'), 50);</script>",
    "dialogs": "<script>alert('hello'); confirm('sure?'); prompt('name?');</script>",
    "reload": "<script>setTimeout(() => location.reload(), 50);</script>",
    # keeps asking its API for the next product's data, as a live widget would
    "poll": "<script>setInterval(() => fetch('/api/goods/' + ({id} + 1) + '?poll=1'), 20);</script>",
}


class FaultShop(DemoShop):
    def __init__(self, products: int = 1000):
        super().__init__(products)
        self.hits: dict[str, list[float]] = defaultdict(list)  # path -> trio times of requests
        self.hosts: dict[str, list[float]] = defaultdict(list)  # Host header -> times of page requests

    def page_hits(self, kind: str, i: int) -> list[float]:
        return self.hits[f"/{kind}/{i}"]

    async def __call__(self, request: HttpRequest) -> Response:
        now = trio.current_time()
        self.hits[request.path].append(now)
        parts = request.path.strip("/").split("/")
        kind = parts[0]
        if kind in ("api", "img") or len(parts) < 2:  # sub-resources, /, /favicon.ico
            response = await super().__call__(request)
            delay_s = float(request.query.get("delay", ["0"])[0])
            return attrs.evolve(response, delay_s=delay_s) if delay_s else response
        self.hosts[request.headers.get("host", "")].append(now)
        if kind == "status" and len(parts) == 3:
            code, i = int(parts[1]), self._id(parts[2])
            times = int(request.query.get("times", ["1"])[0])
            if len(self.hits[request.path]) <= times:
                retry_after = request.query.get("retry_after", [None])[0]
                headers = (("Retry-After", retry_after),) if retry_after else ()
                return Response(status=code, body=b"<h1>Busy</h1>", headers=headers)
            return self._page(i)
        i = self._id(parts[-1]) if len(parts) == 2 else None
        if i is None:
            return Response(status=404, body=b"<h1>Not found</h1>")
        if kind == "product":
            return self._page(i)
        if kind == "hang":
            return Response(hang=True)
        if kind == "slow":
            return Response(body=self._html(i), delay_s=float(request.query.get("s", ["1"])[0]))
        if kind == "truncate":
            return Response(body=self._html(i), truncate=True)
        if kind == "lateapi":
            late = f'fetch("/api/goods/{i}?delay={request.query.get("s", ["2"])[0]}")'
            return Response(body=self._html(i).replace(f'fetch("/api/goods/{i}")'.encode(), late.encode()))
        if kind == "never":
            return Response(body=self._html(i).replace(b"dataset.ready", b"dataset.notready"))
        if kind in SCRIPTS:
            return Response(body=self._html(i, SCRIPTS[kind].replace("{id}", str(i))))
        return Response(status=404, body=b"<h1>Not found</h1>")

    def _html(self, i: int, extra: str = "") -> bytes:
        p = product(i)
        page = PRODUCT_PAGE.format(title=p["name"], name=p["name"], brand=p["brand"], image=p["image"], id=i)
        return page.replace("<body>", "<body>" + extra, 1).encode()

    def _page(self, i: int | None) -> Response:
        if i is None:
            return Response(status=404, body=b"<h1>Not found</h1>")
        return Response(body=self._html(i))


async def start_shop(nursery: trio.Nursery, shop: FaultShop, host: str = "127.0.0.1") -> str:
    """Serve ``shop`` on ``host`` (a free port) in ``nursery``; returns its base URL."""
    port = await nursery.start(lambda task_status: serve_http(shop, host=host, port=0, task_status=task_status))
    return f"http://{host}:{port}"
