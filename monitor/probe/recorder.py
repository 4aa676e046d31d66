"""Times each SMTP step and turns its reply or exception into a StepResult."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field

import aiosmtplib

from monitor.probe.errors import class_for_code, classify
from monitor.probe.result import Step, StepResult
from monitor.redact import redact
from monitor.results import FailureClass

# RFC 3463 §2: class.subject.detail at the start of the reply text (RFC 2034 §4).
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")


def enhanced_code(text: str) -> str | None:
    match = _ENHANCED.match(text)
    return ".".join(match.groups()) if match else None


class StepFailed(Exception):
    """Ends the session: carries the step that failed the probe."""

    def __init__(self, result: StepResult) -> None:
        super().__init__(f"{result.step} failed")
        self.result = result


Reply = aiosmtplib.SMTPResponse


@dataclass
class StepRecorder:
    steps: list[StepResult] = field(default_factory=list)
    current: Step | None = None
    # Our credentials in every form we send them: no server reply records them.
    redact: tuple[str, ...] = field(default=(), repr=False)
    _started: float = 0.0

    async def run(
        self,
        step: Step,
        command: str | None,
        action: Callable[[], Awaitable[Reply]],
        *,
        expect: Collection[int],
        tolerate: Collection[int] = (),
        refusal_class: Callable[[int], FailureClass] | None = None,
        fatal: bool = True,
        recipient: str | None = None,
    ) -> Reply | None:
        """Run one step and record it; return the reply when its code is expected.

        A reply in `tolerate` (EHLO refused, so HELO follows) is recorded with
        ok=False and no class, and returns None. Any other outcome fails the
        step with a class: raised as StepFailed when `fatal`, else recorded and
        None returned (each RCPT is recorded before the session gives up).
        `refusal_class` overrides the code→class mapping for an unexpected reply
        (e.g. any 5xx at AUTH is `auth`).
        """
        self.current = step
        self._started = time.perf_counter()
        code: int | None
        try:
            reply = await action()
        except Exception as exc:  # translated in one place: errors.classify
            classified = classify(exc)
            code, text, failure_class = classified.code, classified.text, classified.failure_class
        else:
            code, text = reply.code, reply.message
            if code in expect:
                self._record(step, command, code, text, ok=True, recipient=recipient)
                return reply
            failure_class = class_for_code(code)
        # aiosmtplib raises for most unexpected codes, so refusals arrive either way.
        if code is not None and code in tolerate:
            self._record(step, command, code, text, ok=False, recipient=recipient)
            return None
        if code is not None and refusal_class is not None:
            failure_class = refusal_class(code)
        result = self._record(step, command, code, text, ok=False,
                              failure_class=failure_class, recipient=recipient)
        if fatal:
            raise StepFailed(result)
        return None

    def forgive_last(self) -> None:
        """Keep the last step's outcome on record without letting it fail the probe."""
        self.steps[-1] = self.steps[-1].model_copy(update={"failure_class": None})

    def fail_current(self, failure_class: FailureClass, text: str,
                     command: str | None = None) -> StepResult:
        """Record a failure decided outside a reply, e.g. the overall timeout."""
        return self._record(self.current or Step.CONNECT, command, None, text, ok=False,
                            failure_class=failure_class)

    def fail(self, step: Step, failure_class: FailureClass, text: str) -> StepFailed:
        """A failure we detect ourselves (STARTTLS not offered, no common AUTH mechanism)."""
        self.current = step
        self._started = time.perf_counter()
        return StepFailed(self._record(step, None, None, text, ok=False,
                                       failure_class=failure_class))

    def _record(self, step: Step, command: str | None, code: int | None, text: str, *,
                ok: bool, failure_class: FailureClass | None = None,
                recipient: str | None = None) -> StepResult:
        # Timed first, so the bookkeeping below is not part of the step's latency.
        latency_ms = round((time.perf_counter() - self._started) * 1000, 3)
        enhanced = enhanced_code(text) if code is not None else None
        if any(needle in text for needle in self.redact):  # rarely: skip redact's sort
            text = redact(text, self.redact)
        result = StepResult(
            step=step,
            command=command,
            code=code,
            enhanced_code=enhanced,
            text=_first_lines(text),
            latency_ms=latency_ms,
            ok=ok,
            failure_class=failure_class,
            recipient=recipient,
        )
        self.steps.append(result)
        return result


def _first_lines(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
