"""Events: columnar hits, cells, particles and truth, and their readers and writers."""
from .event import Event
from .table import Table

__all__ = ["Event", "Table"]
