#!/usr/bin/env python3
"""A real OTLP/HTTP trace receiver for the end-to-end tests: accepts `POST /v1/traces`
(`application/x-protobuf`), decodes each request with the OpenTelemetry project's own protobuf
definitions (`opentelemetry-proto` from PyPI, so a wrong encoding fails here, not in a
hand-written decoder), appends every span to `--out` as one JSON line and answers with an empty
`ExportTraceServiceResponse`. Prints `listening <port>` once it accepts connections; serves until
killed.

Each line: service (the resource's `service.name`), trace_id, span_id, parent_span_id (hex, ""
for a root), name, start_ns, end_ns, status ("unset" | "ok" | "error"), attributes (key ->
value as text), links (span ids)."""

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

STATUS = {0: "unset", 1: "ok", 2: "error"}


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


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="the JSON lines file spans are appended to")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (0.0.0.0 for senders in containers)"
    )
    args = parser.parse_args()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path != "/v1/traces":
                return self.answer(404, b"", "text/plain")
            if self.headers.get("content-type", "") != "application/x-protobuf":
                return self.answer(415, b"expected application/x-protobuf", "text/plain")
            request = ExportTraceServiceRequest()
            try:
                request.ParseFromString(body)
            except Exception as e:  # a malformed body is the sender's bug: say so
                return self.answer(400, str(e).encode(), "text/plain")
            with lock, open(args.out, "a", encoding="utf-8") as out:
                for span in spans_of(request):
                    out.write(json.dumps(span, sort_keys=True) + "\n")
            self.answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

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
