# -*- test-case-name: tests.test_proto -*-
"""
Regenerate the C{*_pb2.py} and C{*_pb2.pyi} modules from the C{.proto} files.

Run from anywhere, with the C{proto} extra installed::

    python -m aphelion.proto.generate

L{generate} is also what the staleness test calls, into a scratch folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
ROOT = PROTO_DIR.parent.parent


def protoFiles() -> list[Path]:
    """
    The C{.proto} sources, sorted.
    """
    return sorted(PROTO_DIR.glob("*.proto"))


def generate(outDir: Path = ROOT) -> None:
    """
    Run protoc (from C{grpcio-tools}) over every C{.proto} file.

    :param outDir: the folder that plays the repository root; the modules land
        in C{outDir/aphelion/proto}.
    :raises RuntimeError: when protoc fails.
    """
    from grpc_tools import protoc  # the proto extra; not a runtime dependency

    args = [
        "protoc",
        f"-I{ROOT}",
        f"--python_out={outDir}",
        f"--pyi_out={outDir}",
        *(str(p.relative_to(ROOT)) for p in protoFiles()),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))


if __name__ == "__main__":
    generate()
    sys.stdout.write("regenerated " + ", ".join(p.name for p in protoFiles()) + "\n")
