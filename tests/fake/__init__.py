"""An in-memory Chromium for the engine (``browser``) and a chaos layer around it (``chaos``).

Both run under trio's ``MockClock`` with ``autojump_threshold=0``: every latency of
the fake is virtual time, so a crawl of dozens of pages with timeouts of minutes
runs in a fraction of a real second, and exactly the same way every time.
"""
