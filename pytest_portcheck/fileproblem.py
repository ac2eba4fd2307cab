"""A problem in a file at a line, and several problems of one file reported as one error.

An inventory and the Compose, Kubernetes and Terraform files it reads report every problem at once,
each as ``file:line: what is wrong and the fix``; ``FileProblem`` is that shape once, and
``InventoryError`` and ``SourceError`` are its two kinds. Imports only the standard library; must
not import anything of the package (it is a primitive).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeVar

_Problem = TypeVar("_Problem", bound="FileProblem")


class FileProblem(Exception):
    """A problem in a file at a line (1-based; 0 when the file as a whole is at fault)."""

    def __init__(self, path: str | os.PathLike[str], line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")
        self.path = path
        self.line = line
        self.message = message
        self.problems: tuple[FileProblem, ...] = (self,)

    @classmethod
    def all_of(cls: type[_Problem], problems: Sequence[_Problem]) -> _Problem:
        """One error for several problems: each on its own line (file:line: fix), the first one first."""
        if len(problems) == 1:
            return problems[0]
        first = problems[0]
        rest = "\n".join(str(problem) for problem in problems[1:])
        combined = cls(first.path, first.line, f"{first.message}\n{rest}")
        combined.problems = tuple(problems)
        return combined
