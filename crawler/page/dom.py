"""Selectors that see what a user sees: JavaScript that queries through open *and*
closed shadow roots, and the hook that makes closed roots reachable.

Every selector a handler or a TOML route gives is matched by :data:`QUERY_JS`'s
``__qa`` / ``__q``, in the document and in every shadow root under it, each tree
scope on its own (a selector does not combine across a shadow boundary); matches come
in document order, a host's shadow content right after the host.  A page without
shadow roots pays one walk of its elements per evaluation, then native
``querySelectorAll``.

A closed root (``attachShadow({mode: 'closed'})``) is invisible to the page's other
scripts by design, and ``element.shadowRoot`` is null for it.  :data:`SHADOW_HOOK_JS`
runs in every document before the page's own scripts (``Page.addScriptToEvaluateOnNewDocument``,
see :mod:`crawler.page.tab`) and keeps, for each host, the root ``attachShadow``
returned, in a WeakMap only our queries read.  Roots the HTML parser attaches
(declarative ``<template shadowrootmode="closed">``) do not pass through
``attachShadow`` and stay out of reach.
"""

from __future__ import annotations

import json

# The hook: ``attachShadow`` wrapped in a Proxy (its ``toString`` still reads as native
# code), and one non-enumerable global to look a host's root up.
SHADOW_HOOK_JS = """
(() => {
  const roots = new WeakMap();
  const attach = Element.prototype.attachShadow;
  if (!attach || window.__crawlerShadowRoot) return;
  Element.prototype.attachShadow = new Proxy(attach, {
    apply(target, self, args) { const root = Reflect.apply(target, self, args); roots.set(self, root); return root; },
  });
  Object.defineProperty(window, '__crawlerShadowRoot', {value: (e) => roots.get(e) || null});
})();
"""

# ``__qa(selector, scope)``: every match under ``scope`` (document, a shadow root, or an
# element: its descendants and its own shadow content) through shadow roots; ``__q``: the first.  ``__hosts`` is computed
# once per evaluation (each one runs this prelude afresh).
QUERY_JS = """
  const __rootOf = (e) => e.shadowRoot || (window.__crawlerShadowRoot ? window.__crawlerShadowRoot(e) : null);
  let __hostList = null;
  const __hosts = () => {
    if (__hostList === null) {
      __hostList = [];
      const walk = (scope) => {
        for (const e of scope.querySelectorAll('*')) {
          const r = __rootOf(e);
          if (r) { __hostList.push([e, r]); walk(r); }
        }
      };
      walk(document);
    }
    return __hostList;
  };
  const __qa = (sel, scope) => {
    scope = scope || document;
    const native = Array.from(scope.querySelectorAll(sel));
    if (!__hosts().length) return native;
    const tree = scope.nodeType === 1 ? scope.getRootNode() : scope;
    const out = [];
    let i = 0;
    for (const [h, r] of __hosts()) {
      if (h.getRootNode() !== tree || !(scope === tree || scope.contains(h))) continue;
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
