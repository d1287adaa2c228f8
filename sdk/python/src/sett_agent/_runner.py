"""Running a handler under the tool contract: read stdin, call the handler, print exactly one JSON
object, exit. Whatever goes wrong on the agent's side (bad input, an exception, a wrong return
value, stray prints) still ends in one valid output — a Failure that says what happened — and
exit code 0, because the cub only reads stdout after a zero exit (a non-zero exit throws the
output away and keeps only its tail). The bid runner does the opposite on error: it exits 1, so
the cub falls back to the agent's static `bidding_strategy`, as the contract says."""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from typing import IO, Any, Awaitable, Callable, NoReturn, Union

from ._input import Artifact, InputError, ToolInput, _StrEnum
from ._output import Output, _one_line, failure

Handler = Callable[[ToolInput], Union[Output, Awaitable[Output]]]
"""A tool: gets the parsed input, returns an `Output` (a coroutine function works too)."""

TRACEBACK_TAIL = 4096
"""How much of a traceback a Failure keeps (the cub's own failure tails keep as much)."""

ERROR_TYPE = "AgentError"
"""The artifact type of the Failure written when the handler raises or returns no Output."""

INPUT_ERROR_TYPE = "InvalidToolInput"
"""The artifact type of the Failure written when stdin does not follow the contract."""


class Bid(_StrEnum):
    """A bid script's answer."""

    REVIEW = "review"
    CLAIM = "claim"
    EXCLUSIVE = "exclusive"
    IGNORE = "ignore"


BidHandler = Callable[[Artifact], Union[Bid, str]]
"""A bid script: gets the new artifact, returns a `Bid` (or its word)."""


def _tail(text: str, limit: int = TRACEBACK_TAIL) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def _await_if_needed(result: Any) -> Any:
    if isinstance(result, Output):
        return result
    # Imported here: asyncio alone would double the SDK's import time for synchronous agents.
    import asyncio
    import inspect

    if inspect.isawaitable(result):

        async def wait() -> Any:
            return await result

        return asyncio.run(wait())
    return result


def error_failure(error: BaseException) -> Output:
    """The Failure reporting an exception raised by a handler: its type, message and the tail of
    its traceback."""
    kind = type(error).__qualname__
    message = str(error)
    reason = f"the agent raised {kind}: {message}" if message else f"the agent raised {kind}"
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return failure(
        reason,
        artifact_type=ERROR_TYPE,
        details={"error_type": kind, "message": message, "traceback": _tail(trace)},
        summary=_one_line(reason),
    )


def respond(handler: Handler, stdin: str | bytes, *, log: IO[str] | None = None) -> Output:
    """The output for one tool input: the handler's, or the Failure saying why there is none.
    Never raises (except for `SystemExit` and `KeyboardInterrupt`, which end the tool as asked).
    While the handler runs, `print()` writes to `log` (stderr by default), never to stdout."""
    log = sys.stderr if log is None else log
    try:
        task = ToolInput.from_json(stdin)
    except InputError as e:
        print(f"sett_agent: invalid tool input: {e}", file=log)
        return failure(f"the tool input does not follow the contract: {e}", artifact_type=INPUT_ERROR_TYPE)
    try:
        with contextlib.redirect_stdout(log):
            result = _await_if_needed(handler(task))
    except Exception as e:  # the agent's own error: reported, never lost
        print(f"sett_agent: the handler raised {type(e).__qualname__}; reporting a Failure", file=log)
        traceback.print_exception(type(e), e, e.__traceback__, file=log)
        return error_failure(e)
    if not isinstance(result, Output):
        got = "None (a missing return?)" if result is None else f"a {type(result).__qualname__}"
        reason = (
            f"the handler returned {got}; it must return an Output made with artifact(), terminal(), "
            "approve(), request_changes(), question() or failure()"
        )
        print(f"sett_agent: {reason}", file=log)
        return failure(reason, artifact_type=ERROR_TYPE)
    try:
        result.to_json().encode("utf-8")
    except (TypeError, ValueError, RecursionError) as e:  # a payload changed after the Output was made
        reason = f"the handler's output cannot be encoded: its payload must be JSON (was it changed after the Output was made?): {e}"
        print(f"sett_agent: {reason}", file=log)
        return failure(reason, artifact_type=ERROR_TYPE)
    return result


def execute(handler: Handler, *, stdin: IO[bytes], stdout: IO[bytes], log: IO[str] | None = None) -> int:
    """Reads the input from `stdin`, writes the output line to `stdout`; returns the exit code."""
    output = respond(handler, stdin.read(), log=log)
    try:
        stdout.write(output.to_json().encode("utf-8") + b"\n")
        stdout.flush()
    except OSError as e:
        print(f"sett_agent: cannot write the output to stdout: {e}", file=log or sys.stderr)
        return 1
    return 0


def _stdout_for_the_output() -> IO[bytes]:
    """Takes file descriptor 1 for the output alone: a copy of it carries the output, and fd 1
    itself now points to stderr, so stray prints of the handler and of its subprocesses (a
    `git commit` without `-q`) land in the cub's log instead of corrupting the one JSON object."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:
        return sys.stdout.buffer
    return os.fdopen(saved, "wb")


def run(handler: Handler) -> NoReturn:
    """Runs `handler` as a Sett tool: the whole `main` of an agent.

    ```python
    if __name__ == "__main__":
        sett_agent.run(handle)
    ```
    """
    if sys.stdin.isatty():
        print("sett_agent: reading the tool input (one JSON object) from stdin…", file=sys.stderr)
    out = _stdout_for_the_output()
    code = execute(handler, stdin=sys.stdin.buffer, stdout=out, log=sys.stderr)
    sys.stdout.flush()
    sys.exit(code)


def decide(handler: BidHandler, stdin: str | bytes) -> Bid:
    """A bid for the artifact in `stdin`. Raises `InputError` on bad input, `ValueError` when
    the handler returns something that is not a bid, and whatever the handler raises."""
    target = Artifact.from_json(stdin)
    with contextlib.redirect_stdout(sys.stderr):
        result = handler(target)
    if isinstance(result, Bid):
        return result
    if isinstance(result, str):
        try:
            return Bid(result.strip())
        except ValueError:
            pass
    raise ValueError(
        f"the bid handler returned {result!r}; it must return a Bid "
        "(review, claim, exclusive or ignore)"
    )


def run_bid(handler: BidHandler) -> NoReturn:
    """Runs `handler` as a `bid_script`: prints its bid and exits 0. On any error it prints why to
    stderr and exits 1: the cub then uses the agent's static `bidding_strategy` (else `ignore`)
    and logs the reason."""
    out = _stdout_for_the_output()
    try:
        bid = decide(handler, sys.stdin.buffer.read())
    except Exception as e:
        print(f"sett_agent: no bid ({type(e).__qualname__}: {e}); the cub uses the static strategy", file=sys.stderr)
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
        sys.exit(1)
    out.write(bid.value.encode("ascii") + b"\n")
    out.flush()
    sys.exit(0)
