"""Selectors that see what a user sees: JavaScript that queries through open *and*
closed shadow roots, and the hook that makes closed roots reachable.

Every selector a handler or a TOML route gives is matched by :data:`QUERY_JS`'s
``__qa`` / ``__q``, in the document and in every shadow root under it, each tree
scope on its own (a selector does not combine across a shadow boundary); matches come
in document order, a host's shadow content right after the host.  A page without
shadow roots pays native ``querySelectorAll`` and no more (see :data:`SHADOW_HOOK_JS`).

A closed root (``attachShadow({mode: 'closed'})``) is invisible to the page's other
scripts by design, and ``element.shadowRoot`` is null for it.  :data:`SHADOW_HOOK_JS`
runs in every document before the page's own scripts (``Page.addScriptToEvaluateOnNewDocument``,
see :mod:`crawler.page.tab`) and keeps, for each host, the root ``attachShadow``
returned, in a WeakMap only our queries read, and the hosts themselves.  Roots the
HTML parser attaches (declarative ``<template shadowrootmode>``) do not pass through
``attachShadow``: open ones are found by walking the document, closed ones stay out
of reach.
"""

from __future__ import annotations

import json

# The hook: ``attachShadow`` wrapped in a Proxy (its ``toString`` still reads as native
# code), and one non-enumerable global our queries read: ``root(host)`` (closed roots
# too) and ``hosts()``, every connected host.  Hosts are known as ``attachShadow`` makes
# them; roots the parser made from markup (declarative) are found by one walk of the
# document once it is parsed, and by a walk per call while it is still loading.  So a
# query on a parsed page costs no walk (one was 7 ms on the heavy benchmark page).
SHADOW_HOOK_JS = """
(() => {
  const attach = Element.prototype.attachShadow;
  if (!attach || window.__crawlerShadow) return;
  const roots = new WeakMap();
  let hosts = new Set();
  Element.prototype.attachShadow = new Proxy(attach, {
    apply(target, self, args) {
      const root = Reflect.apply(target, self, args);
      roots.set(self, root);
      hosts.add(self);
      return root;
    },
  });
  const rootOf = (e) => roots.get(e) || e.shadowRoot || null;
  const walk = (scope, found) => {
    for (const e of scope.querySelectorAll('*')) {
      const r = rootOf(e);
      if (r) { found.add(e); walk(r, found); }
    }
    return found;
  };
  let parsed = false;
  Object.defineProperty(window, '__crawlerShadow', {value: {
    root: rootOf,
    hosts() {
      if (document.readyState === 'loading') return [...walk(document, new Set(hosts))];
      if (!parsed) { parsed = true; walk(document, hosts); }
      hosts = new Set([...hosts].filter((h) => h.isConnected));
      return [...hosts];
    },
  }});
})();
"""

# ``__qa(selector, scope)``: every match under ``scope`` (document, a shadow root, or an
# element: its descendants and its own shadow content) through shadow roots; ``__q``:
# the first.  The hosts are asked for once per evaluation (each one runs this prelude
# afresh); without the hook (a document it did not reach) they are walked for.
QUERY_JS = """
  const __api = window.__crawlerShadow;
  const __rootOf = (e) => __api ? __api.root(e) : e.shadowRoot;
  let __hostList = null;
  const __hosts = () => {
    if (__hostList === null) {
      if (__api) {
        __hostList = __api.hosts().map((e) => [e, __api.root(e)]);
      } else {
        __hostList = [];
        const walk = (scope) => {
          for (const e of scope.querySelectorAll('*')) {
            const r = __rootOf(e);
            if (r) { __hostList.push([e, r]); walk(r); }
          }
        };
        walk(document);
      }
    }
    return __hostList;
  };
  const __qa = (sel, scope) => {
    scope = scope || document;
    const native = Array.from(scope.querySelectorAll(sel));
    if (!__hosts().length) return native;
    const tree = scope.nodeType === 1 ? scope.getRootNode() : scope;
    const hosts = __hosts().filter(([h]) => h.getRootNode() === tree && (scope === tree || scope.contains(h)));
    hosts.sort(([a], [b]) => (a.compareDocumentPosition(b) & 4 ? -1 : 1));
    const out = [];
    let i = 0;
    for (const [h, r] of hosts) {
      while (i < native.length && (native[i].compareDocumentPosition(h) & 4)) out.push(native[i++]);
      out.push(...__qa(sel, r));
    }
    return out.concat(native.slice(i));
  };
  const __q = (sel, scope) => __hosts().length ? __qa(sel, scope)[0] || null : (scope || document).querySelector(sel);
"""


def query(selector: str, expression: str) -> str:
    """JS: ``expression`` with ``el`` bound to the first match of ``selector`` (null if
    none), through shadow roots."""
    return f"(() => {{ {QUERY_JS}\n  const el = __q({json.dumps(selector)});\n  return ({expression});\n}})()"


# What a page holds beyond its own tree, for ``crawler try``: its frames (a selector for
# each, its URL, whether it is another origin's) and its shadow hosts (open or closed).
SURVEY_JS = f"""(() => {{ {QUERY_JS}
  const name = (e) => e.localName + (e.id ? '#' + e.id : '') + (e.classList.length ? '.' + e.classList[0] : '');
  const frames = __qa('iframe, frame').map((e) => ({{selector: name(e), url: e.src || 'about:blank',
    other_origin: (() => {{ try {{ return e.contentDocument === null; }} catch (_) {{ return true; }} }})()}}));
  const hosts = __hosts().map(([e, r]) => ({{selector: name(e), mode: r.mode}}));
  return {{frames: frames, hosts: hosts}};
}})()"""
