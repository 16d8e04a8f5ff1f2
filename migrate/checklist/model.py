"""The checklist's results: one check's outcome (`CheckResult`) and the verdict they add up to (`Checklist`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

STATUSES = ("pass", "fail", "warn", "skipped")


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: status pass|fail|warn|skipped, the evidence, and the threshold it was held to."""

    name: str
    status: str
    evidence: str
    threshold: str

    def passed(self, evidence: str) -> CheckResult:
        return dataclasses.replace(self, status="pass", evidence=evidence)

    def failed(self, evidence: str) -> CheckResult:
        return dataclasses.replace(self, status="fail", evidence=evidence)

    def warned(self, evidence: str) -> CheckResult:
        return dataclasses.replace(self, status="warn", evidence=evidence)

    def skip(self, evidence: str) -> CheckResult:
        return dataclasses.replace(self, status="skipped", evidence=evidence)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "evidence": self.evidence, "threshold": self.threshold}


@dataclass(frozen=True)
class Checklist:
    """Every check's result, in order, and the verdict they add up to."""

    spec_name: str
    checks: tuple[CheckResult, ...]
    unevaluated: tuple[str, ...] = ()  # checks that could not reach their system
    elapsed_s: float = 0.0

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(c for c in self.checks if c.status == "fail")

    @property
    def verdict(self) -> str:
        return "GO" if not self.failed and not self.unevaluated else "NO-GO"

    @property
    def exit_code(self) -> int:
        if self.unevaluated:
            return 2
        return 1 if self.failed else 0

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in STATUSES}

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "spec": self.spec_name,
            "exit_code": self.exit_code,
            "checks": [c.to_dict() for c in self.checks],
            "could_not_evaluate": list(self.unevaluated),
            "elapsed_s": round(self.elapsed_s, 3),
        }
