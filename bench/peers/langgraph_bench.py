"""LangGraph side of `cargo xtask bench --only peers`: a one-node graph whose node asks a
question with `interrupt()`; the answer is given with `Command(resume=...)` and the node
resumes. Checkpoints go to LangGraph's own SQLite checkpointer (a file, durable like Sett's
Redis). Measured: answer given -> node running again (wall clock), one thread at a time.

  python langgraph_bench.py N DB_PATH

Prints one JSON object on stdout.
"""
import json
import sqlite3
import sys
import time
from typing import TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt


class State(TypedDict):
    answer: str
    resumed_ns: int


def ask(state: State):
    answer = interrupt("Which database?")
    return {"answer": answer, "resumed_ns": time.time_ns()}


def summary(v):
    v = sorted(v)
    p = lambda q: v[round((len(v) - 1) * q)] if v else 0.0
    return {"p50_ms": p(0.5), "p90_ms": p(0.9), "p99_ms": p(0.99), "max_ms": p(1.0), "n": len(v)}


def main(n, db):
    conn = sqlite3.connect(db, check_same_thread=False)
    graph = StateGraph(State).add_node("ask", ask).add_edge(START, "ask").add_edge("ask", END)
    graph = graph.compile(checkpointer=SqliteSaver(conn))
    lat = []
    for i in range(n + 3):
        cfg = {"configurable": {"thread_id": f"t{i}"}}
        out = graph.invoke({"answer": "", "resumed_ns": 0}, cfg)
        assert "__interrupt__" in out, out
        t0 = time.time_ns()
        out = graph.invoke(Command(resume="Postgres"), cfg)
        assert out["answer"] == "Postgres", out
        if i >= 3:
            lat.append((out["resumed_ns"] - t0) / 1e6)
    print(json.dumps({"questions": n, "checkpointer": "SqliteSaver", "answer_to_resumed": summary(lat)}))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
