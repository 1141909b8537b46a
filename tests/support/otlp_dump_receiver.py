"""An OTLP/gRPC trace receiver that is not ours: the OpenTelemetry project's
own Python wire types (opentelemetry-proto) served by grpcio. It writes every
span it receives as one JSON line, so a test can check the tree of spans that
llm-loadtest and vLLM exported.

    python otlp_dump_receiver.py --listen 127.0.0.1:4317 --out spans.jsonl

Prints "listening on ADDR" once ready; runs until killed.
"""

import argparse
import json
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


def value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind in ("array_value", "kvlist_value"):
        return str(getattr(v, kind))
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


class Dump(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, out):
        self.out = out
        self.lock = threading.Lock()

    def Export(self, request, context):
        lines = []
        for rs in request.resource_spans:
            resource = {a.key: value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    lines.append(json.dumps({
                        "service": resource.get("service.name"),
                        "scope": ss.scope.name,
                        "name": s.name,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "kind": s.kind,
                        "start_ns": s.start_time_unix_nano,
                        "end_ns": s.end_time_unix_nano,
                        "attributes": {a.key: value(a.value) for a in s.attributes},
                    }))
        with self.lock:
            for line in lines:
                self.out.write(line + "\n")
            self.out.flush()
        return trace_service_pb2.ExportTraceServiceResponse()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    out = open(args.out, "a", encoding="utf-8")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Dump(out), server)
    if server.add_insecure_port(args.listen) == 0:
        sys.exit(f"cannot listen on {args.listen}")
    server.start()
    print(f"listening on {args.listen}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
