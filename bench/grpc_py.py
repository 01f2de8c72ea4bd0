#!/usr/bin/python3
"""Python message classes for retrace's API and gRPC health, generated at run time, and a
readiness wait for the bench scripts.

    grpc_py.py wait-serving HOST:PORT [--timeout SECONDS]   # exit 0 once health says SERVING

Debian's python3-grpc-tools is too old for protobuf 3.21, so the classes come from the system
`protoc --python_out` into a temporary folder (messages only; services are registered by hand
with grpc.method_handlers_generic_handler). Needs python3-grpcio and python3-protobuf.
"""

import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEALTH_PROTO_ROOT = "/usr/share/grpc-proto"  # Debian's grpc-proto package
_generated = None


def generate():
    """(retrace_pb2, health_pb2), generated once per process."""
    global _generated
    if _generated is None:
        out = tempfile.mkdtemp(prefix="retrace-pyproto-")
        # health.proto moves to a folder of its own: as grpc/health/v1/ its module would sit
        # under the installed `grpc` package, where Python would not look for it.
        health_src = os.path.join(out, "src", "retrace_health")
        os.makedirs(health_src)
        shutil.copyfile(os.path.join(HEALTH_PROTO_ROOT, "grpc", "health", "v1", "health.proto"),
                        os.path.join(health_src, "health.proto"))
        subprocess.run(["protoc", "-I", os.path.join(REPO, "proto"), "-I", os.path.join(out, "src"),
                        "--python_out", out, "retrace/v1/retrace.proto",
                        "retrace_health/health.proto"], check=True)
        sys.path.insert(0, out)
        _generated = (importlib.import_module("retrace.v1.retrace_pb2"),
                      importlib.import_module("retrace_health.health_pb2"))
        shutil.rmtree(out, ignore_errors=True)  # the modules are loaded; nothing reads them again
    return _generated


def unary(channel, service, method, request, response_class, timeout=None):
    """One unary call, (de)serialised by the generated classes."""
    call = channel.unary_unary("/%s/%s" % (service, method),
                               request_serializer=type(request).SerializeToString,
                               response_deserializer=response_class.FromString)
    return call(request, timeout=timeout)


def wait_serving(address, timeout):
    """True once the server's health check answers SERVING within timeout seconds."""
    import grpc
    _, health = generate()
    deadline = time.time() + timeout
    with grpc.insecure_channel(address) as channel:
        while time.time() < deadline:
            try:
                reply = unary(channel, "grpc.health.v1.Health", "Check",
                              health.HealthCheckRequest(), health.HealthCheckResponse, timeout=2)
                if reply.status == health.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass  # not listening yet, or still loading
            time.sleep(0.25)
    return False


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("wait-serving")
    w.add_argument("address")
    w.add_argument("--timeout", type=float, default=120)
    a = p.parse_args()
    if wait_serving(a.address, a.timeout):
        return 0
    sys.stderr.write("%s: not SERVING after %g s\n" % (a.address, a.timeout))
    return 1


if __name__ == "__main__":
    sys.exit(main())
