"""A trio structured-concurrency crawler that drives headless Chromium over CDP."""

__version__ = "0.1.0"
