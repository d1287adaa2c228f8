"""Write Sett agents in Python.

An agent is a handler that gets the tool input (`ToolInput`) and returns one `Output`:

```python
import sett_agent as sett

def handle(task: sett.ToolInput) -> sett.Output:
    if task.claim_type is sett.ClaimType.REVIEW:
        return sett.approve()
    return sett.artifact("Plan", f"A plan for {task.target.payload}", summary="planned")

if __name__ == "__main__":
    sett.run(handle)
```

The contract it implements is docs/agents.md ("The tool contract"). Standard library only.
"""

from ._input import (
    JSON,
    Artifact,
    ClaimType,
    Identity,
    InputError,
    PayloadError,
    QuestionAnswer,
    ReviewFeedback,
    StructuralType,
    ToolInput,
)
from ._output import Output, Usage, approve, artifact, failure, question, request_changes, terminal
from ._trace import TraceParent, traceparent
from ._runner import (
    ERROR_TYPE,
    INPUT_ERROR_TYPE,
    Bid,
    BidHandler,
    Handler,
    decide,
    error_failure,
    execute,
    respond,
    run,
    run_bid,
)

__all__ = [
    "ERROR_TYPE",
    "INPUT_ERROR_TYPE",
    "JSON",
    "Artifact",
    "Bid",
    "BidHandler",
    "ClaimType",
    "Handler",
    "Identity",
    "InputError",
    "Output",
    "PayloadError",
    "QuestionAnswer",
    "ReviewFeedback",
    "StructuralType",
    "ToolInput",
    "TraceParent",
    "Usage",
    "approve",
    "artifact",
    "decide",
    "error_failure",
    "execute",
    "failure",
    "question",
    "request_changes",
    "respond",
    "run",
    "run_bid",
    "terminal",
    "traceparent",
]

__version__ = "0.1.0"
