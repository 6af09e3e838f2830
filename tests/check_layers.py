#!/usr/bin/env python3
"""Lint: the subsystem order of src/meson.build holds for every #include.

A file in src/<sub>/ or include/gitgate/<sub>/ may include the headers of
its own subsystem and of those before it in the `subsystems` list, never
of one after it; and every folder under src/ and include/gitgate/ must be
a listed subsystem, so that a new one cannot escape the order. Prints
"N passed, N failed" (one per file checked) and exits 1 on any violation.
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
text = (root / "src" / "meson.build").read_text()
m = re.search(r"subsystems\s*=\s*\[(.*?)\]", text, re.S)
if not m:
    sys.exit("check_layers: no `subsystems = [...]` in src/meson.build")
order = re.findall(r"'([a-z0-9_]+)'", m.group(1))
rank = {name: i for i, name in enumerate(order)}
include = re.compile(r'^\s*#\s*include\s+"gitgate/([a-z0-9_]+)/[^"]+"', re.M)

ok = bad = 0
for top in (root / "src", root / "include" / "gitgate"):
    for d in sorted(p for p in top.iterdir() if p.is_dir()):
        if d.name not in rank:
            print(f"{d.relative_to(root)}: folder is not a subsystem "
                  f"listed in src/meson.build")
            bad += 1
    for f in sorted(top.glob("*/*.[ch]")):
        sub = f.parent.name
        if sub not in rank:
            continue
        problems = [used for used in include.findall(f.read_text())
                    if used not in rank or rank[used] > rank[sub]]
        for used in problems:
            print(f"{f.relative_to(root)}: {sub} includes gitgate/{used}/, "
                  f"which comes after it (order: {' < '.join(order)})")
        if problems:
            bad += 1
        else:
            ok += 1
print(f"{ok} passed, {bad} failed")
sys.exit(1 if bad else 0)
