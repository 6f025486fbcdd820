#!/usr/bin/env python3
"""Fails when a direct dependency in Cargo.toml is used nowhere in the code.

Every crate in `[dependencies]`, `[dev-dependencies]` and `[build-dependencies]` must be named
(as `crate_name::` / `use crate_name` / `crate_name!`-style paths) somewhere under the source
roots (default: src, tests, bench, build.rs). A crate that is needed without being named (e.g.
only to turn on a feature of a transitive dependency) goes into [package.metadata.unused-deps]
`allow = [...]` with a comment saying why.

cargo-machete does the same (with the same blind spot for feature-only crates); a 60-line
script needs no extra build in CI. Usage: unused_deps.py [Cargo.toml [ROOT ...]].
"""

import re
import sys
import tomllib
from pathlib import Path


def declared(manifest: dict) -> dict[str, str]:
    """Crate name as code spells it (`-` → `_`, `package =` renames honoured) → table."""
    out = {}
    for table in ("dependencies", "dev-dependencies", "build-dependencies"):
        for key, spec in manifest.get(table, {}).items():
            # `foo = { package = "bar" }` is spelled `foo` in code.
            out[key.replace("-", "_")] = table
    for target in manifest.get("target", {}).values():
        for table in ("dependencies", "dev-dependencies", "build-dependencies"):
            for key in target.get(table, {}):
                out[key.replace("-", "_")] = f"target.{table}"
    return out


def sources(base: Path, roots: list[str]) -> str:
    text = []
    for root in roots:
        p = base / root
        files = [p] if p.is_file() else sorted(p.rglob("*.rs")) if p.is_dir() else []
        for f in files:
            text.append(f.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(text)


def main(argv: list[str]) -> int:
    manifest_path = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / "Cargo.toml"
    roots = argv[2:] or ["src", "tests", "bench", "build.rs"]
    manifest = tomllib.loads(manifest_path.read_text(encoding="utf-8"))
    allow = set(manifest.get("package", {}).get("metadata", {}).get("unused-deps", {}).get("allow", []))
    code = sources(manifest_path.parent, roots)
    unused = []
    for name, table in sorted(declared(manifest).items()):
        if name in {a.replace("-", "_") for a in allow}:
            continue
        # A path use (`name::`), an import (`use name`), or an extern crate.
        if not re.search(rf"(?<![A-Za-z0-9_:]){re.escape(name)}\s*(::|;|\s+as\s)|\buse\s+{re.escape(name)}\b|extern\s+crate\s+{re.escape(name)}\b", code):
            unused.append(f"{name} ([{table}])")
    if unused:
        print(f"unused direct dependencies in {manifest_path}: " + ", ".join(unused))
        print("hint: remove them from Cargo.toml, or list a feature-only crate in "
              "[package.metadata.unused-deps] allow = [...] with a comment saying why")
        return 1
    print(f"every direct dependency of {manifest_path} is used")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
