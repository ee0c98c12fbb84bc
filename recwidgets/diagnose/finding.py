"""The Finding record that every detector returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

SEVERITIES = ("info", "warning", "error")


@dataclass(frozen=True)
class Finding:
    """One diagnosis result: what is wrong, how sure we are, and what to do about it.

    ``id`` is a stable dotted name such as ``"attention.causal"``; ``evidence`` holds the
    numbers behind the verdict (JSON-serialisable scalars or short lists); ``fix`` is a
    suggested remedy; ``reference`` cites the literature where one exists; ``view`` names
    the widget and selection that shows the evidence (for example
    ``{"widget": "AttentionHeatmap", "user": 12}``).
    """

    id: str
    severity: str
    title: str
    evidence: dict = field(default_factory=dict)
    fix: str = ""
    reference: str = ""
    view: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is invalid; use one of {SEVERITIES}.")

    def to_dict(self) -> dict:
        """Return the finding as plain JSON-serialisable data."""
        return asdict(self)

    @property
    def at_least_warning(self) -> bool:
        """Whether the severity is warning or error."""
        return self.severity in ("warning", "error")
