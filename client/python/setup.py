"""Builds the retrace client package, generating retrace/v1/retrace_pb2{,_grpc}.py (and .pyi)
from proto/retrace/v1/retrace.proto with Debian's protoc and grpc_python_plugin. Metadata is in
pyproject.toml; this file only adds the generation step to build_py.

The proto's package is retrace.v1 and it is compiled with -I proto/, so the generated stubs
import each other as `retrace.v1.retrace_pb2`: inside this package, with no path fix-up.
"""

import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.environ.get("RETRACE_PROTO_DIR", os.path.join(HERE, "..", "..", "proto"))
PROTO = "retrace/v1/retrace.proto"


def generate(out_dir):
    protoc = shutil.which("protoc")
    plugin = shutil.which("grpc_python_plugin")
    if not protoc or not plugin:
        raise SystemExit("retrace: protoc and grpc_python_plugin are needed to build the stubs "
                         "(apt-get install protobuf-compiler protobuf-compiler-grpc)")
    if not os.path.exists(os.path.join(PROTO_DIR, PROTO)):
        raise SystemExit("retrace: %s not found under %s: build from the repository's "
                         "client/python or set RETRACE_PROTO_DIR" % (PROTO, PROTO_DIR))
    os.makedirs(os.path.join(out_dir, "retrace", "v1"), exist_ok=True)
    subprocess.run([protoc, "-I" + PROTO_DIR, "--python_out=" + out_dir, "--pyi_out=" + out_dir,
                    "--grpc_out=" + out_dir, "--plugin=protoc-gen-grpc=" + plugin,
                    os.path.join(PROTO_DIR, PROTO)], check=True)
    with open(os.path.join(out_dir, "retrace", "v1", "__init__.py"), "w") as f:
        f.write('"""Generated from proto/retrace/v1/retrace.proto."""\n')


class BuildPyWithStubs(build_py):
    def run(self):
        super().run()
        generate(self.build_lib)


setup(cmdclass={"build_py": BuildPyWithStubs})
