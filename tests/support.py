"""Helpers shared by the Python-level tests (not a conftest: tests/c has its own)."""

import asyncio


def run(coro):
    """Run a coroutine on a fresh event loop (tests stay plain functions)."""
    return asyncio.run(coro)
