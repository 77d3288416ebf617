"""Fixtures for event I/O tests."""
from __future__ import annotations

import pytest
from event_io_helpers import make_event

from trackcore.event import Event


@pytest.fixture
def synthetic_event() -> Event:
    """A small event with every part and awkward values (see event_io_helpers.make_event)."""
    return make_event()
