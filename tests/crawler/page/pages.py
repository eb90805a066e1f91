"""Test pages for the Page fidelity, frame and widget tests, the servers that serve
them, and ``page_on``, which opens one the way a crawl's pool opens a tab.

Every page is served by both sites of :func:`start_sites`: ``main`` on
``http://127.0.0.1:PORT`` and ``other`` on ``http://localhost:PORT2`` (another site,
so Chromium puts a frame of it in another renderer process); a page names the other
site's base as ``{other}`` and the stream server's as ``{streams}``.  Each site logs
every request it answers (``Site.requests``).  Both listen on 127.0.0.1 only.

=======================  ==================================================================
``/io-list``             60 ``li.review`` (``r01``..``r60``), 10 per ``/api/reviews?page=N``,
                         loaded when a sentinel below the list comes into view
                         (IntersectionObserver)
``/scroll-list``         50 ``li.question`` (``q01``..``q50``), 10 per
                         ``/api/questions?page=N``, loaded by a ``scroll`` listener near
                         the bottom (page 1 at once)
``/lazy-images``         :data:`LAZY_IMAGES` images 300 px apart: even ones ``loading=lazy``
                         (``/img/lazy-N.png``), odd ones ``data-src`` swapped in by an
                         IntersectionObserver (``/img/io-N.png``)
``/raf-list``            40 ``li.frame-item`` (``f01``..``f40``) rendered 5 per
                         requestAnimationFrame; then ``#list[data-done]``
``/frames/same``         ``iframe#x`` of ``/frames/list`` (same origin)
``/frames/list``         12 ``li.item`` (``i01``..``i12``, ``.name``) rendered by script;
                         then ``ul[data-done]``
``/frames/cross``        ``iframe#x`` of ``{other}/frames/widget`` (another site)
``/frames/widget``       ``li.widget-item`` ``w01``..``w06`` from ``/api/widget?page=1``,
                         ``button#more`` adds ``w07``..``w12`` from ``?page=2`` and goes
``/frames/nested``       ``iframe#outer`` of ``/frames/outer``, which holds
                         ``p#outer-note`` and ``iframe#inner`` of ``{other}/frames/list``
``/frames/shadowed``     ``iframe#x`` of ``/shadow``
``/shadow``              ``li.item`` ``l1`` in the light DOM, ``o1``..``o4`` in an open
                         shadow root, ``c1``..``c4`` in the closed root of ``<x-closed>``
                         (added 100 ms late); ``button.buy`` in the closed root adds
                         ``p.bought`` there
``/select``              ``select#size``: a change loads ``/api/stock?size=`` into
                         ``#stock[data-size]``; ``input#gift`` a checkbox; ``window.events``
                         logs the select's input and change events
``/menu``                ``li#products``: its ``.sub`` links are made on mouseenter and
                         shown only while it is ``:hover``
``/search?q=``           a GET form ``#q``; with ``q``, ``li.result`` for every
                         :data:`CATALOGUE` name containing it (server-rendered)
``/jssearch``            the same form, submitted by script (``/api/search?q=``)
``/frames/search``       ``iframe#x`` of ``{other}/jssearch``
``/idle/streams``        fetches whose bodies it never reads (a small JSON, an 8 MiB body,
                         ``{streams}/hold``), a beacon the server answers in 30 s, an
                         EventSource on ``{streams}/events``; ``body[data-started]`` once
                         all have their headers and the first event came
``/idle/poll``           fetches ``/api/tick`` (answered in 150 ms) every 100 ms, forever
=======================  ==================================================================
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

import cdp
import crawler
from crawler.config import CrawlSection
from crawler.demo import PIXEL_PNG
from crawler.httpserver import HttpRequest, Response, serve_http
from crawler.page.links import LinkFilter
from crawler.page.page import PageEnv, open_page
from crawler.page.tab import prepare_tab
from crawler.policy.ratelimit import HostRateLimiter
from crawler.request import Request

REVIEWS = [f"r{i:02d}" for i in range(1, 61)]
QUESTIONS = [f"q{i:02d}" for i in range(1, 51)]
RAF_ITEMS = [f"f{i:02d}" for i in range(1, 41)]
FRAME_ITEMS = [f"i{i:02d}" for i in range(1, 13)]
WIDGET_ITEMS = [f"w{i:02d}" for i in range(1, 13)]
SHADOW_ITEMS = ["l1", "o1", "o2", "o3", "o4", "c1", "c2", "c3", "c4"]
LAZY_IMAGES = 30
MENU = ["lamps", "chairs", "tables", "rugs", "shelves", "mirrors"]
STOCK = {"s": 12, "m": 7, "l": 3}
CATALOGUE = ["Desk lamp", "Floor lamp", "Oak chair", "Lamp shade", "Wool rug", "Clamp light"]
PAGE_SIZE = 10
LARGE_BODY_BYTES = 8 * 2**20  # 8 MiB, more than the browser buffers for a body nobody reads
TICK_DELAY_S = 0.15  # /api/tick: longer than the poll page's interval, so one is always in flight

# -- the pages ---------------------------------------------------------------------------------

_LIST_STYLE = "<style>body { margin: 0 } li { height: 70px; border-bottom: 1px solid #ccc }</style>"

IO_LIST = f"""<!doctype html><html><head><title>Reviews</title>{_LIST_STYLE}</head><body>
<h1>Reviews</h1><ol id=reviews></ol><div id=sentinel style="height: 1px"></div>
<script>
let next = 1, loading = false, visible = false;
async function more() {{
  if (loading || next === null) return;
  loading = true;
  const data = await (await fetch('/api/reviews?page=' + next)).json();
  const list = document.getElementById('reviews');
  for (const r of data.items) {{
    const li = document.createElement('li');
    li.className = 'review'; li.dataset.id = r.id; li.textContent = r.text;
    list.append(li);
  }}
  next = data.next; loading = false;
  if (visible) more();
}}
new IntersectionObserver((entries) => {{
  visible = entries[entries.length - 1].isIntersecting;
  if (visible) more();
}}).observe(document.getElementById('sentinel'));
</script></body></html>"""

SCROLL_LIST = f"""<!doctype html><html><head><title>Questions</title>{_LIST_STYLE}</head><body>
<h1>Questions</h1><ol id=questions></ol>
<script>
let next = 1, loading = false;
async function more() {{
  if (loading || next === null) return;
  loading = true;
  const data = await (await fetch('/api/questions?page=' + next)).json();
  const list = document.getElementById('questions');
  for (const q of data.items) {{
    const li = document.createElement('li');
    li.className = 'question'; li.dataset.id = q.id; li.textContent = q.text;
    list.append(li);
  }}
  next = data.next; loading = false;
}}
window.addEventListener('scroll', () => {{
  if (window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 300) more();
}});
more();
</script></body></html>"""


def _lazy_images() -> str:
    blocks = []
    for i in range(LAZY_IMAGES):
        if i % 2 == 0:
            img = f"<img loading=lazy src=/img/lazy-{i}.png width=50 height=50>"
        else:
            img = f"<img class=io data-src=/img/io-{i}.png width=50 height=50>"
        blocks.append(f'<div style="height: 300px">{img}</div>')
    return f"""<!doctype html><html><head><title>Gallery</title><style>body {{ margin: 0 }}</style></head>
<body><h1>Gallery</h1>{"".join(blocks)}
<script>
const io = new IntersectionObserver((entries) => {{
  for (const e of entries) if (e.isIntersecting) {{ e.target.src = e.target.dataset.src; io.unobserve(e.target); }}
}});
document.querySelectorAll('img.io').forEach((img) => io.observe(img));
</script></body></html>"""


def lazy_image_paths() -> set[str]:
    """The path of every image of ``/lazy-images``."""
    return {f"/img/lazy-{i}.png" if i % 2 == 0 else f"/img/io-{i}.png" for i in range(LAZY_IMAGES)}


RAF_LIST = """<!doctype html><html><head><title>Frames</title></head><body>
<ul id=list></ul>
<script>
const list = document.getElementById('list');
let made = 0;
function step() {
  for (let k = 0; k < 5 && made < 40; k++) {
    made++;
    const li = document.createElement('li');
    li.className = 'frame-item'; li.dataset.id = 'f' + String(made).padStart(2, '0'); li.textContent = 'item ' + made;
    list.append(li);
  }
  if (made < 40) requestAnimationFrame(step); else list.dataset.done = '1';
}
window.rafCalls = 0;
requestAnimationFrame(() => window.rafCalls++);
requestAnimationFrame(step);
</script></body></html>"""

FRAME_LIST = """<!doctype html><html><head><title>List</title></head><body>
<ul id=items></ul>
<script>
setTimeout(() => {
  const ul = document.getElementById('items');
  for (let i = 1; i <= 12; i++) {
    const id = 'i' + String(i).padStart(2, '0');
    ul.insertAdjacentHTML('beforeend', `<li class=item data-id=${id}><span class=name>Item ${i}</span></li>`);
  }
  ul.dataset.done = '1';
}, 50);
</script></body></html>"""

WIDGET = """<!doctype html><html><head><title>Widget</title></head><body>
<ul id=widget></ul><button id=more>More</button>
<script>
async function load(page) {
  const data = await (await fetch('/api/widget?page=' + page)).json();
  for (const it of data.items)
    document.getElementById('widget').insertAdjacentHTML('beforeend', `<li class=widget-item data-id=${it.id}>${it.name}</li>`);
  if (data.page === 2) document.getElementById('more').remove();
}
document.getElementById('more').addEventListener('click', () => load(2));
load(1);
</script></body></html>"""

SHADOW = """<!doctype html><html><head><title>Shadow</title></head><body>
<ul id=light><li class=item data-id=l1><span class=name>Light 1</span></li></ul>
<div id=open-host></div>
<x-closed></x-closed>
<script>
const items = (prefix, label) => [1, 2, 3, 4].map(
  (i) => `<li class=item data-id=${prefix}${i}><span class=name>${label} ${i}</span></li>`).join('');
const open = document.getElementById('open-host').attachShadow({mode: 'open'});
open.innerHTML = `<h2 class=title>Open</h2><ul>${items('o', 'Open')}</ul>`;
class XClosed extends HTMLElement {
  constructor() {
    super();
    const root = this.attachShadow({mode: 'closed'});
    setTimeout(() => {
      root.innerHTML = `<h2 class=title>Closed</h2><ul>${items('c', 'Closed')}</ul><button class=buy>Buy</button>`;
      root.querySelector('button.buy').addEventListener('click', () => {
        root.append(Object.assign(document.createElement('p'), {className: 'bought', textContent: 'bought'}));
      });
    }, 100);
  }
}
customElements.define('x-closed', XClosed);
</script></body></html>"""

SELECT = """<!doctype html><html><head><title>Size</title></head><body>
<select id=size><option value="">Pick a size</option><option value=s>Small</option>
<option value=m>Medium</option><option value=l>Large</option></select>
<label><input type=checkbox id=gift> gift wrap</label>
<p id=stock></p>
<script>
window.events = [];
const size = document.getElementById('size');
for (const kind of ['input', 'change']) size.addEventListener(kind, (e) => events.push(kind + ':' + size.value));
size.addEventListener('change', async () => {
  const data = await (await fetch('/api/stock?size=' + size.value)).json();
  const stock = document.getElementById('stock');
  stock.textContent = data.left + ' left';
  stock.dataset.size = data.size;
});
</script></body></html>"""

MENU_PAGE = """<!doctype html><html><head><title>Menu</title>
<style>nav .sub { display: none } nav li.menu:hover .sub { display: block } nav li { width: 200px }</style></head>
<body><nav><ul>
<li class=menu id=products><a href=/products>Products</a><ul class=sub></ul></li>
<li><a href=/about>About</a></li>
</ul></nav><p style="height: 400px">Welcome</p>
<script>
window.events = [];
const menu = document.getElementById('products');
menu.addEventListener('mouseover', () => events.includes('mouseover') || events.push('mouseover'));
menu.addEventListener('mouseenter', () => {
  events.push('mouseenter');
  if (menu.querySelector('.sub a')) return;
  menu.querySelector('.sub').innerHTML = MENU.map((c) => `<li><a href=/c/${c}>${c}</a></li>`).join('');
});
</script></body></html>""".replace("MENU.map", json.dumps(MENU) + ".map")

_SEARCH_FORM = "<form id=search action=/search method=get><input id=q name=q autocomplete=off></form>"

JS_SEARCH = f"""<!doctype html><html><head><title>Search</title></head><body>
{_SEARCH_FORM}<ul id=results></ul>
<script>
document.getElementById('search').addEventListener('submit', async (e) => {{
  e.preventDefault();
  const q = document.getElementById('q').value;
  const data = await (await fetch('/api/search?q=' + encodeURIComponent(q))).json();
  document.getElementById('results').innerHTML =
    data.results.map((name) => `<li class=result>${{name}}</li>`).join('');
}});
</script></body></html>"""

IDLE_STREAMS = """<!doctype html><html><head><title>Streams</title></head><body>
<p>live</p>
<script>
// Fetches whose bodies are never read, a beacon that is never answered in time,
// and an EventSource that keeps sending: none of them is the page still loading.
const heads = [fetch('/api/unread'), fetch('/api/large'), fetch('{streams}/hold')];
navigator.sendBeacon('/beacon', 'seen');
const events = new EventSource('{streams}/events');
const first = new Promise((resolve) => { events.onmessage = resolve; });
Promise.all([...heads, first]).then(() => { document.body.dataset.started = '1'; });
</script></body></html>"""

IDLE_POLL = """<!doctype html><html><head><title>Poll</title></head><body>
<p>polling</p>
<script>setInterval(() => fetch('/api/tick').then((r) => r.json()), 100);</script>
</body></html>"""


def _frame_page(src: str, extra: str = "") -> str:
    return f"""<!doctype html><html><head><title>Parent</title></head><body>
<h1>Parent</h1>{extra}<iframe id=x src="{src}" width=600 height=400></iframe></body></html>"""


def _search_results(q: str) -> list[str]:
    """The CATALOGUE names ``q`` finds (case-insensitive substring), in catalogue order."""
    return [name for name in CATALOGUE if q.lower() in name.lower()] if q else []


def _search_page(request: HttpRequest) -> Response:
    q = request.query.get("q", [""])[0]
    results = "".join(f"<li class=result>{name}</li>" for name in _search_results(q))
    return _html(
        f"<!doctype html><html><head><title>Search</title></head><body>{_SEARCH_FORM}<ul>{results}</ul></body></html>"
    )


def _paged(ids: list[str], label: str) -> Callable[[HttpRequest], Response]:
    def answer(request: HttpRequest) -> Response:
        page = int(request.query.get("page", ["1"])[0])
        chunk = ids[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        following = page + 1 if page * PAGE_SIZE < len(ids) else None
        items = [{"id": i, "text": f"{label} {i}"} for i in chunk]
        return _json({"page": page, "items": items, "next": following})

    return answer


def _widget(request: HttpRequest) -> Response:
    page = int(request.query.get("page", ["1"])[0])
    chunk = WIDGET_ITEMS[(page - 1) * 6 : page * 6]
    return _json({"page": page, "items": [{"id": i, "name": f"Widget {i}"} for i in chunk]})


def _stock(request: HttpRequest) -> Response:
    size = request.query.get("size", [""])[0]
    return _json({"size": size, "left": STOCK.get(size, 0)})


def _html(text: str) -> Response:
    return Response(body=text.encode())


def _json(value: Any, **options: Any) -> Response:
    return Response(body=json.dumps(value).encode(), content_type="application/json", **options)


ROUTES: dict[str, str | Response | Callable[[HttpRequest], Response]] = {
    "/io-list": IO_LIST,
    "/scroll-list": SCROLL_LIST,
    "/lazy-images": _lazy_images(),
    "/raf-list": RAF_LIST,
    "/frames/same": _frame_page("/frames/list"),
    "/frames/list": FRAME_LIST,
    "/frames/cross": _frame_page("{other}/frames/widget"),
    "/frames/widget": WIDGET,
    "/frames/nested": _frame_page("/frames/outer").replace("id=x", "id=outer"),
    "/frames/outer": _frame_page("{other}/frames/list", "<p id=outer-note>outer</p>").replace("id=x", "id=inner"),
    "/frames/shadowed": _frame_page("/shadow"),
    "/frames/search": _frame_page("{other}/jssearch"),
    "/shadow": SHADOW,
    "/select": SELECT,
    "/menu": MENU_PAGE,
    "/search": _search_page,
    "/jssearch": JS_SEARCH,
    "/idle/streams": IDLE_STREAMS,
    "/idle/poll": IDLE_POLL,
    "/api/reviews": _paged(REVIEWS, "Review"),
    "/api/questions": _paged(QUESTIONS, "Question"),
    "/api/widget": _widget,
    "/api/stock": _stock,
    "/api/search": lambda request: _json({"results": _search_results(request.query.get("q", [""])[0])}),
    "/api/unread": _json({"unread": True}),
    "/api/large": Response(body=b"x" * LARGE_BODY_BYTES, content_type="application/octet-stream"),
    "/api/tick": _json({"tick": True}, delay_s=TICK_DELAY_S),
    "/beacon": Response(status=204, delay_s=30.0),
}


# -- the servers -------------------------------------------------------------------------------


@attrs.define(eq=False)
class Site:
    """One origin serving :data:`ROUTES` (``/img/*`` as a 1x1 PNG), ``{other}`` and
    ``{streams}`` in its pages filled in; every request it was sent is in ``requests``."""

    base: str = ""
    names: dict[str, str] = attrs.Factory(dict)  # placeholder -> URL, for the pages
    requests: list[HttpRequest] = attrs.Factory(list)

    @property
    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    async def __call__(self, request: HttpRequest) -> Response:
        self.requests.append(request)
        if request.path.startswith("/img/"):
            return Response(body=PIXEL_PNG, content_type="image/png")
        route = ROUTES.get(request.path)
        if route is None:
            return Response(status=404, body=b"<h1>Not found</h1>")
        response = route(request) if callable(route) else route
        if isinstance(response, str):
            for name, url in self.names.items():
                response = response.replace("{" + name + "}", url)
            response = _html(response)
        return response


@attrs.frozen
class Sites:
    main: Site  # http://127.0.0.1:PORT
    other: Site  # http://localhost:PORT2: another site
    streams: str  # http://127.0.0.1:PORT3: /events (an EventSource), /hold (a body held open)


async def start_sites(nursery: trio.Nursery) -> Sites:
    """Serve :data:`ROUTES` as two sites and the stream server, in ``nursery``, all on
    127.0.0.1 (the second site is reached as ``localhost``)."""
    main, other = Site(), Site()
    for site, host in ((main, "127.0.0.1"), (other, "localhost")):
        port = await nursery.start(lambda task_status, s=site: serve_http(s, host="127.0.0.1", task_status=task_status))
        site.base = f"http://{host}:{port}"
    port = await nursery.start(_serve_streams)
    streams = f"http://127.0.0.1:{port}"
    main.names.update(other=other.base, streams=streams)
    other.names.update(other=main.base, streams=streams)
    return Sites(main, other, streams)


EVENT_INTERVAL_S = 0.2  # the EventSource's server sends an event this often
_STREAM_HEAD = "HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: *\r\nCache-Control: no-store\r\n"


async def _serve_streams(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """What crawler.httpserver cannot do: answer and keep the body going.  ``/events``
    is an event stream sending an event every EVENT_INTERVAL_S; ``/hold`` announces
    1 MB, sends 1 KiB and then nothing, with the connection open.  Until cancelled."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(_stream, listeners)


async def _stream(stream: trio.SocketStream) -> None:
    head = b""
    try:
        async with stream:
            while b"\r\n\r\n" not in head:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return
                head += chunk
            path = head.split(b" ", 2)[1].decode("latin-1").split("?")[0]
            if path == "/events":
                await stream.send_all(f"{_STREAM_HEAD}Content-Type: text/event-stream\r\n\r\n".encode())
                n = 0
                while True:
                    n += 1
                    await stream.send_all(f"data: {n}\n\n".encode())
                    await trio.sleep(EVENT_INTERVAL_S)
            elif path == "/hold":
                await stream.send_all(
                    f"{_STREAM_HEAD}Content-Type: text/plain\r\nContent-Length: 1000000\r\n\r\n".encode()
                )
                await stream.send_all(b"x" * 1024)
                await trio.sleep_forever()
            else:
                await stream.send_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
        return


# -- opening a page ----------------------------------------------------------------------------


def env_for(**options: Any) -> PageEnv:
    """A PageEnv with no pacing and no link rules to speak of; ``options`` go to PageEnv."""

    async def known(urls: list[str]) -> set[str]:
        return set()

    return PageEnv(HostRateLimiter((0, 0)), LinkFilter(CrawlSection()), known, 0.02, **options)


async def visibility(tab: cdp.Tab) -> str:
    """``document.visibilityState`` in the tab, asked directly (no Page involved)."""
    reply = await tab.send("Runtime.evaluate", expression="document.visibilityState", returnByValue=True)
    return reply["result"]["value"]


@asynccontextmanager
async def page_on(
    browser: cdp.Browser, url: str, env: PageEnv | None = None, *, render: str = "visible"
) -> AsyncIterator[crawler.Page]:
    """A Page at ``url``, opened as a crawl's pool hands out a tab it reuses
    (``TabPool._take_tab``, ``_stop_idle_page``): in a context of its own, the tab's window
    minimised first, as the pool leaves an idle tab (checked: the tab reports
    'hidden'), then prepared with ``prepare_tab`` and opened with ``open_page``: the page
    must render all the same (as the visible, focused tab) unless ``render`` is "hidden".  Another tab of the context is
    opened after it, as a busy pool's would be."""
    env = env or env_for()
    context = await browser.create_context()
    try:
        tab = await context.create_tab()
        await context.create_tab()  # closed with the context
        try:
            await tab.set_visible(False)
            with trio.fail_after(2):
                while await visibility(tab) != "hidden":  # noqa: ASYNC110 - the renderer learns it a little later
                    await trio.sleep(0.02)
            await prepare_tab(tab, pace_documents=env.paces_documents)
            async with open_page(tab, Request(url), env, render=render) as page:
                await page.goto(url)
                yield page
        finally:
            await tab.aclose()
    finally:
        await context.aclose()
