#!/usr/bin/env python3
"""A real OTLP/HTTP trace receiver for the end-to-end tests: accepts `POST /v1/traces`
(`application/x-protobuf`), decodes each request with the OpenTelemetry project's own protobuf
definitions (`opentelemetry-proto` from PyPI, so a wrong encoding fails here, not in a
hand-written decoder), appends every span to `--out` as one JSON line and answers with an empty
`ExportTraceServiceResponse`. Prints `listening <port>` once it accepts connections; serves until
killed.

With `--raw FILE` it does not decode while serving: it appends each request's body to FILE (a
4-byte big-endian length, then the body) and answers the same empty response. This is the
benchmark's stand-in for a collector running on another machine (xtask/src/bench_traces.rs):
decoding in Python on the engine's own cores would be counted as Sett's cost. `--decode-raw
FILE --out SPANS` later decodes such a file, with the same definitions, into the same JSON lines
(and fails on a body that does not decode), so every span is still checked, outside the
measured time.

Each line: service (the resource's `service.name`), trace_id, span_id, parent_span_id (hex, ""
for a root), name, start_ns, end_ns, status ("unset" | "ok" | "error"), attributes (key ->
value as text), links (span ids)."""

import argparse
import json
import os
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

STATUS = {0: "unset", 1: "ok", 2: "error"}
EMPTY_RESPONSE = ExportTraceServiceResponse().SerializeToString()


def value_text(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return ""
    return str(getattr(v, kind))


def spans_of(request):
    for rs in request.resource_spans:
        service = next(
            (value_text(a.value) for a in rs.resource.attributes if a.key == "service.name"), ""
        )
        for ss in rs.scope_spans:
            for s in ss.spans:
                yield {
                    "service": service,
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "name": s.name,
                    "start_ns": s.start_time_unix_nano,
                    "end_ns": s.end_time_unix_nano,
                    "status": STATUS.get(s.status.code, str(s.status.code)),
                    "attributes": {a.key: value_text(a.value) for a in s.attributes},
                    "links": [link.span_id.hex() for link in s.links],
                }


def write_spans(out, request):
    for span in spans_of(request):
        out.write(json.dumps(span, sort_keys=True) + "\n")


def decode_raw(raw, out_path):
    """Decodes the bodies `--raw` stored into JSON lines; returns how many requests it read (none
    when nothing was received: the file is made by the first request)."""
    requests = 0
    if not os.path.exists(raw):
        return requests
    with open(raw, "rb") as f, open(out_path, "a", encoding="utf-8") as out:
        while header := f.read(4):
            (length,) = struct.unpack(">I", header)
            body = f.read(length)
            if len(body) != length:
                raise ValueError(f"{raw}: truncated body after {requests} requests")
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            write_spans(out, request)
            requests += 1
    return requests


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="the JSON lines file spans are appended to")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (0.0.0.0 for senders in containers)"
    )
    parser.add_argument("--raw", help="store the request bodies in this file instead of decoding them")
    parser.add_argument("--decode-raw", help="decode a file `--raw` wrote into --out, then exit")
    args = parser.parse_args()
    if args.decode_raw:
        print(f"decoded {decode_raw(args.decode_raw, args.out)} requests", flush=True)
        return 0
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path != "/v1/traces":
                return self.answer(404, b"", "text/plain")
            if self.headers.get("content-type", "") != "application/x-protobuf":
                return self.answer(415, b"expected application/x-protobuf", "text/plain")
            if args.raw:
                with lock, open(args.raw, "ab") as raw:
                    raw.write(struct.pack(">I", len(body)) + body)
                return self.answer(200, EMPTY_RESPONSE, "application/x-protobuf")
            request = ExportTraceServiceRequest()
            try:
                request.ParseFromString(body)
            except Exception as e:  # a malformed body is the sender's bug: say so
                return self.answer(400, str(e).encode(), "text/plain")
            with lock, open(args.out, "a", encoding="utf-8") as out:
                write_spans(out, request)
            self.answer(200, EMPTY_RESPONSE, "application/x-protobuf")

        def answer(self, status, body, content_type):
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
