"""Drives `sett mcp` with the official MCP Python SDK (`mcp` on PyPI), a client nobody here wrote.

Run by the end-to-end tests (tests/tests/e2e/mcp.rs), which start the instance and read the JSON
report this prints on its last stdout line. Any failed expectation exits non-zero with the reason.

    client.py workflow  --instance NAME --operator NAME (--stdio SETT [ARGS...] | --http URL --token T)
    client.py read-only --instance NAME                 (--stdio SETT [ARGS...] | --http URL --token T)
    client.py no-token  --http URL

workflow:  initialize, list tools, subscribe to the questions resource, start a workflow (forage)
           and subscribe to its goal, be notified of its question, answer it, be notified until
           the workflow is complete, read the Terminal artifact's resource.
cancel:    with --allow-actions, cancel a workflow waiting on its question; the question closes;
           a second cancel says who cancelled.
structured: a question with options shows its answer_spec; an answer outside the options is
           refused with the problem; option 2 by number is the answer the agent resumes with.
read-only: forage, answering and cancelling are refused with messages naming --allow-actions and
           --allow-answers; reading works.
no-token:  an HTTP client without the token is refused (401).
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import anyio
import httpx2
import mcp_types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

# Bounds on waiting, so a broken server fails the test instead of hanging it. They are limits,
# not synchronisation: every wait ends as soon as its notification arrives; nothing sleeps.
NOTIFICATION_LIMIT_S = 90
WORKFLOW_LIMIT_S = 90

EXPECTED_TOOLS = {
    "forage",
    "list_workflows",
    "show_workflow",
    "get_artifact",
    "list_questions",
    "answer_question",
    "status",
    "verify",
    "cancel_workflow",
}


class Failed(Exception):
    pass


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise Failed(what)


@asynccontextmanager
async def connect(args: argparse.Namespace, on_message) -> AsyncIterator[ClientSession]:
    if args.stdio:
        params = StdioServerParameters(command=args.stdio[0], args=args.stdio[1:])
        transport = stdio_client(params)
        http = None
    else:
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
        http = create_mcp_http_client(headers=headers)
        transport = streamable_http_client(args.http, http_client=http)
    async with transport as (read, write):
        async with ClientSession(read, write, message_handler=on_message) as session:
            yield session
    if http is not None:
        await http.aclose()


async def call(session: ClientSession, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await session.call_tool(tool, arguments)
    expect(not result.is_error, f"{tool} failed: {result.content}")
    expect(result.structured_content is not None, f"{tool} returned no structured content")
    return result.structured_content


async def workflow(args: argparse.Namespace) -> dict[str, Any]:
    questions_uri = f"sett://{args.instance}/questions"
    updated = anyio.Event()
    notified: list[str] = []
    # Set when the goal's resource is updated (the workflow gained an artifact, or ended);
    # replaced before each look at the workflow, so no update is missed between look and wait.
    goal_changed = {"event": anyio.Event(), "uri": None}

    async def on_message(message) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            notified.append(message.params.uri)
            if message.params.uri == questions_uri:
                updated.set()
            if message.params.uri == goal_changed["uri"]:
                goal_changed["event"].set()

    async with connect(args, on_message) as session:
        init = await session.initialize()
        expect(init.server_info.name == "sett", f"server name {init.server_info.name!r}")
        expect(init.capabilities.resources is not None and init.capabilities.resources.subscribe,
               "resources with subscribe advertised")

        tools = (await session.list_tools()).tools
        names = {t.name for t in tools}
        expect(EXPECTED_TOOLS <= names, f"tools {sorted(names)}")
        for t in tools:
            expect(t.input_schema.get("type") == "object", f"{t.name} has an object input schema")
            expect(t.output_schema is not None and t.output_schema.get("type") == "object",
                   f"{t.name} has an object output schema")

        templates = (await session.list_resource_templates()).resource_templates
        expect(any(t.uri_template == f"sett://{args.instance}/artifacts/{{id}}" for t in templates),
               f"artifact template in {[t.uri_template for t in templates]}")

        await session.subscribe_resource(questions_uri)
        started = await call(session, "forage", {"goal": "Pick a port"})
        goal_id = started["id"]
        expect(started["uri"] == f"sett://{args.instance}/artifacts/{goal_id}", f"goal uri {started['uri']}")
        # Subscribing to the goal's resource follows its workflow until it ends.
        goal_changed["uri"] = started["uri"]
        await session.subscribe_resource(started["uri"])

        with anyio.fail_after(NOTIFICATION_LIMIT_S):
            await updated.wait()

        listed = await call(session, "list_questions", {})
        mine = [q for q in listed["questions"] if q["goal_id"] == goal_id]
        expect(len(mine) == 1, f"one question of the workflow in {listed}")
        question = mine[0]
        expect(question["agent"] == "Asker", f"asked by {question['agent']}")

        shown = await call(session, "show_workflow", {"goal": goal_id})
        expect(shown["state"] == "waiting_for_human", f"state while asking: {shown['state']}")

        answered = await call(session, "answer_question", {"question": question["short_id"], "answer": "8080"})
        expect(answered["question_id"] == question["id"], "answered the question")
        expect(answered["answered_by"] == args.operator, f"answered_by {answered['answered_by']!r}")

        # A second answer is refused with the CLI's message.
        try:
            await session.call_tool("answer_question", {"question": question["id"], "answer": "9090"})
            raise Failed("a second answer was accepted")
        except MCPError as e:
            expect("already answered by" in e.message, f"second answer refused with: {e.message}")
            second_answer_error = e.message

        # Told of each new artifact of the workflow, without polling, until it is complete.
        terminal = None
        with anyio.fail_after(WORKFLOW_LIMIT_S):
            while terminal is None:
                goal_changed["event"] = anyio.Event()
                shown = await call(session, "show_workflow", {"goal": goal_id})
                if shown["state"] == "complete":
                    terminal = next(a for a in shown["artifacts"] if a["structural_type"] == "Terminal")
                else:
                    expect(shown["state"] in ("running", "waiting_for_human"), f"state {shown['state']}")
                    await goal_changed["event"].wait()

        read = await session.read_resource(terminal["uri"])
        expect(len(read.contents) == 1, "one content")
        detail = json.loads(read.contents[0].text)
        expect(detail["artifact"]["payload"] == "8080", f"terminal payload {detail['artifact']['payload']!r}")

        got = await call(session, "get_artifact", {"id": question["id"]})
        expect(got["answer"]["answered_by"] == args.operator, "the question's answer record")
        expect(got["open_question"] is False, "no longer open")

        status = await call(session, "status", {})
        verified = await call(session, "verify", {})
        expect(verified["intact"], f"ledger intact: {verified}")

        try:
            await session.read_resource(f"sett://{args.instance}/artifacts/not-an-id")
            raise Failed("a malformed artifact URI was read")
        except MCPError as e:
            bad_uri_error = e.message

        return {
            "goal_id": goal_id,
            "question_id": question["id"],
            "answer_id": answered["id"],
            "answered_by": answered["answered_by"],
            "terminal_id": terminal["id"],
            "terminal_payload": detail["artifact"]["payload"],
            "notified": notified,
            "tools": sorted(names),
            "health": status["health"],
            "ledger_head": verified["head"],
            "second_answer_error": second_answer_error,
            "bad_uri_error": bad_uri_error,
        }


async def read_only(args: argparse.Namespace) -> dict[str, Any]:
    async def ignore(_message) -> None:
        return None

    async with connect(args, ignore) as session:
        await session.initialize()
        errors = {}
        for tool, arguments in [
            ("forage", {"goal": "Pick a port"}),
            ("answer_question", {"question": "0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d", "answer": "8080"}),
            ("cancel_workflow", {"workflow": "0190c2b4-7d3e-7a1b-9c2d-3e4f5a6b7c8d"}),
        ]:
            try:
                await session.call_tool(tool, arguments)
                raise Failed(f"{tool} was accepted by a read-only server")
            except MCPError as e:
                errors[tool] = e.message
        # Reading still works.
        listed = await call(session, "list_workflows", {})
        return {"errors": errors, "workflows": listed["total"]}


async def cancel(args: argparse.Namespace) -> dict[str, Any]:
    questions_uri = f"sett://{args.instance}/questions"
    asked = anyio.Event()

    async def on_message(message) -> None:
        if isinstance(message, types.ResourceUpdatedNotification) and message.params.uri == questions_uri:
            asked.set()

    async with connect(args, on_message) as session:
        await session.initialize()
        await session.subscribe_resource(questions_uri)
        goal_id = (await call(session, "forage", {"goal": "Pick a port"}))["id"]
        with anyio.fail_after(NOTIFICATION_LIMIT_S):
            await asked.wait()
        cancelled = await call(session, "cancel_workflow", {"workflow": goal_id, "reason": "wrong goal"})
        expect(not cancelled["already_cancelled"], f"{cancelled}")
        expect(len(cancelled["questions"]) == 1, f"its question closed: {cancelled}")
        left = await call(session, "list_questions", {})
        expect(all(q["goal_id"] != goal_id for q in left["questions"]), f"no open question left: {left}")
        again = await call(session, "cancel_workflow", {"workflow": goal_id})
        expect(again["already_cancelled"] and again["operator"] == args.operator, f"second cancel: {again}")
        return {"goal_id": goal_id, "cancelled": cancelled, "again": again}


async def structured(args: argparse.Namespace) -> dict[str, Any]:
    questions_uri = f"sett://{args.instance}/questions"
    asked = anyio.Event()
    goal_changed = {"event": anyio.Event(), "uri": None}

    async def on_message(message) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            if message.params.uri == questions_uri:
                asked.set()
            if message.params.uri == goal_changed["uri"]:
                goal_changed["event"].set()

    async with connect(args, on_message) as session:
        await session.initialize()
        await session.subscribe_resource(questions_uri)
        started = await call(session, "forage", {"goal": "Pick a store"})
        goal_changed["uri"] = started["uri"]
        await session.subscribe_resource(started["uri"])
        with anyio.fail_after(NOTIFICATION_LIMIT_S):
            await asked.wait()
        listed = await call(session, "list_questions", {})
        question = next(q for q in listed["questions"] if q["goal_id"] == started["id"])
        spec = question["answer_spec"]
        try:
            await session.call_tool("answer_question", {"question": question["id"], "json": "MongoDB"})
            raise Failed("an answer outside the options was accepted")
        except MCPError as e:
            refused = e.message
        answered = await call(session, "answer_question", {"question": question["id"], "answer": "2"})
        terminal = None
        with anyio.fail_after(WORKFLOW_LIMIT_S):
            while terminal is None:
                goal_changed["event"] = anyio.Event()
                shown = await call(session, "show_workflow", {"goal": started["id"]})
                if shown["state"] == "complete":
                    terminal = next(a for a in shown["artifacts"] if a["structural_type"] == "Terminal")
                else:
                    await goal_changed["event"].wait()
        return {"question": question["question"], "answer_spec": spec, "refused": refused,
                "answer_id": answered["id"], "terminal_payload": terminal["payload"]}


async def no_token(args: argparse.Namespace) -> dict[str, Any]:
    async with httpx2.AsyncClient() as http:
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "no-token", "version": "0"}},
        }
        bare = await http.post(args.http, json=init,
                               headers={"Accept": "application/json, text/event-stream"})
        wrong = await http.post(args.http, json=init,
                                headers={"Accept": "application/json, text/event-stream",
                                         "Authorization": "Bearer wrong-token-wrong-token"})
    # And the SDK's own client, without the token, does not get a session.
    refused_by_sdk = None
    try:
        async def ignore(_message) -> None:
            return None

        args.token = None
        args.stdio = None
        with anyio.fail_after(30):
            async with connect(args, ignore) as session:
                await session.initialize()
    except Exception as e:  # the SDK raises its transport's error; any error is a refusal
        refused_by_sdk = f"{type(e).__name__}: {e}"
    expect(refused_by_sdk is not None, "the SDK client initialised without a token")
    return {
        "bare_status": bare.status_code,
        "bare_body": bare.text,
        "wrong_status": wrong.status_code,
        "refused_by_sdk": refused_by_sdk,
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=["workflow", "read-only", "cancel", "structured", "no-token"])
    p.add_argument("--instance")
    p.add_argument("--operator")
    p.add_argument("--http")
    p.add_argument("--token")
    p.add_argument("--stdio", nargs=argparse.REMAINDER)
    args = p.parse_args()
    run = {"workflow": workflow, "read-only": read_only, "cancel": cancel, "structured": structured, "no-token": no_token}[args.scenario]
    try:
        report = anyio.run(run, args)
    except Failed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
