"""What goes wrong in a landing folder: the folder itself, or one file that breaks the contract."""

from __future__ import annotations


class LandingError(Exception):
    """Something in the landing folder cannot be loaded."""


class LandingFileError(LandingError):
    """One landing file breaks the contract (missing required column, unreadable header, ...)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
