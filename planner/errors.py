"""Input errors: one line per problem (file, field path, what is wrong, what is expected)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputProblem:
    """One problem found in an input: where it is and what would be right."""

    file: str
    path: str
    message: str
    expected: str = ""

    def line(self) -> str:
        """The problem as one line: ``file: path: message (expected ...)``."""
        where = f"{self.file}: {self.path}" if self.path else self.file
        tail = f" (expected {self.expected})" if self.expected else ""
        return f"{where}: {self.message}{tail}"


class PlannerInputError(Exception):
    """Raised for bad input; carries every problem found, each printable as one line."""

    def __init__(self, problems: list[InputProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(p.line() for p in problems))

    def lines(self) -> list[str]:
        """One line per problem."""
        return [p.line() for p in self.problems]
