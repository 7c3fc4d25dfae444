"""A lock-free ``cached_property`` for the frozen values a county tally makes by the thousand.

Python 3.11's ``functools.cached_property`` takes a lock on every read until the value is
stored; a tally reads a few such properties per branch, so that lock showed in its profile.
This descriptor stores the value in the instance ``__dict__`` on first read, after which
the attribute is an ordinary one (the descriptor is not even called). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class memo(Generic[T]):  # lower case, like the decorator it replaces
    """Compute once per instance, on first read; works on frozen dataclasses (no __slots__)."""

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> memo[T]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> T | memo[T]:
        if instance is None:
            return self
        value = self.func(instance)
        instance.__dict__[self.name] = value  # later reads find it before the descriptor
        return value
