"""The one exception the pure rules raise for input a person typed."""

from __future__ import annotations


class RuleError(ValueError):
    """Input refused by a rule; ``code`` is a catalog key under ``round.error.``."""

    def __init__(self, code: str, **params: object) -> None:
        super().__init__(code)
        self.code = code
        self.params = params
