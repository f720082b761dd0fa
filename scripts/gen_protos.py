#!/usr/bin/env python3
"""Generate the protobuf modules in ``fastetcd/_pb/`` from ``protos/*.proto``.

Usage::

    python3 scripts/gen_protos.py              # regenerate fastetcd/_pb/
    python3 scripts/gen_protos.py --out DIR    # generate somewhere else (tests)

Runs ``grpc_tools.protoc`` (package ``grpcio-tools``) with ``--python_out`` and
``--pyi_out`` only; no gRPC stubs are generated, fastetcd registers its methods
itself. protoc emits top-level cross imports (``import kv_pb2 as kv__pb2``), which
only work when the output dir is on ``sys.path``; they are rewritten into
package-relative ones (``from . import kv_pb2 as kv__pb2``).

The committed modules are generated with grpcio-tools 1.66.x, whose gencode (protobuf
5.27.2) loads on every protobuf runtime from 5.27.2 to 7.x; newer grpcio-tools stamp a newer
minimum runtime version into the files. So regenerate them with
``pip install 'grpcio-tools==1.66.*'`` in a scratch virtualenv. The staleness test compares
descriptors, not file text, so it passes with any grpcio-tools.

Generation happens in a scratch directory and the results are then copied into
the output dir, so a failed run leaves the tree untouched. Generated modules
that no longer have a ``.proto`` are removed; anything else in the output dir
(``__init__.py`` in particular) is left alone.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
DEFAULT_OUT = ROOT / "fastetcd" / "_pb"

# Suffixes protoc produces per .proto with --python_out/--pyi_out.
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi")


def _rewrite_imports(text: str, modules: set[str]) -> str:
    """Turn ``import X_pb2 as Y`` into ``from . import X_pb2 as Y`` for our modules."""

    def repl(m: re.Match[str]) -> str:
        if m.group(2) not in modules:
            return m.group(0)  # e.g. a google.protobuf well-known type: leave it
        return f"{m.group(1)}from . import {m.group(2)} as {m.group(3)}"

    return re.sub(r"^([ \t]*)import (\w+) as (\w+)[ \t]*$", repl, text, flags=re.MULTILINE)


def _private_pool(text: str) -> str:
    """Register our descriptors in fastetcd's own pool (``fastetcd._pb.POOL``) instead of
    protobuf's process-wide default pool, where other etcd clients (aetcd, python-etcd3)
    register the same file and message names: both can then be imported in one process."""
    text = text.replace(
        "from google.protobuf import descriptor_pool as _descriptor_pool\n",
        "from google.protobuf import descriptor_pool as _descriptor_pool\n"
        "from . import POOL as _fastetcd_pool\n",
        1,
    )
    return text.replace("_descriptor_pool.Default()", "_fastetcd_pool")


def generate(out_dir: Path, proto_dir: Path = PROTO_DIR) -> list[Path]:
    """Generate into ``out_dir``; return the written files, sorted."""
    from grpc_tools import protoc  # imported late: only this script needs grpcio-tools

    protos = sorted(proto_dir.glob("*.proto"))
    if not protos:
        raise SystemExit(f"no .proto files in {proto_dir}")
    modules = {p.stem + "_pb2" for p in protos}

    with tempfile.TemporaryDirectory(prefix="fastetcd-protoc-") as scratch:
        args = [
            "grpc_tools.protoc",
            f"-I{proto_dir}",
            f"--python_out={scratch}",
            f"--pyi_out={scratch}",
            *(str(p) for p in protos),
        ]
        rc = protoc.main(args)
        if rc != 0:
            raise SystemExit(f"protoc failed with exit status {rc}")

        out_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for src in sorted(Path(scratch).iterdir()):
            if not src.name.endswith(GENERATED_SUFFIXES):
                continue
            text = _rewrite_imports(src.read_text(encoding="utf-8"), modules)
            if src.suffix == ".py":
                text = _private_pool(text)
            dst = out_dir / src.name
            dst.write_text(text, encoding="utf-8")
            written.append(dst)

    # Drop generated modules whose .proto is gone.
    keep = {p.name for p in written}
    for old in out_dir.iterdir():
        if old.name.endswith(GENERATED_SUFFIXES) and old.name not in keep:
            old.unlink()

    # Sanity check: protoc's naming is what the rewrite above relies on.
    missing = [m for m in sorted(modules) if not (out_dir / f"{m}.py").is_file()]
    if missing:
        raise SystemExit(f"protoc did not produce: {', '.join(missing)}")
    leftover = [
        str(p)
        for p in written
        for line in p.read_text(encoding="utf-8").splitlines()
        if re.match(r"\s*import (\w+_pb2)\b", line) and line.split()[1] in modules
    ]
    if leftover:
        raise SystemExit(f"unrewritten cross imports in: {', '.join(sorted(set(leftover)))}")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"output directory (default: {DEFAULT_OUT.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--protos",
        type=Path,
        default=PROTO_DIR,
        help=f"directory holding the .proto files (default: {PROTO_DIR.relative_to(ROOT)})",
    )
    ns = parser.parse_args(argv)
    written = generate(ns.out.resolve(), ns.protos.resolve())
    for path in written:
        try:
            shown = path.relative_to(ROOT)
        except ValueError:
            shown = path
        print(f"wrote {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
