#!/usr/bin/env python3
"""The library's surface is its headers (issue 16).

Checks that libcbevents.so exports exactly the functions declared in
include/cbevents/*.h (nm -D --defined-only), and that libcbevents.a
defines no global symbol outside the cbev_ namespace, so internal helpers
(named cbev__*) never leak into a program's link. Exits 1 with the
differences, so a function added to a header but not to cmake/cbevents.map
(or a helper left unprefixed) fails ctest.

usage: check_symbols.py INCLUDE_DIR... --so LIB.so --a LIB.a
"""
import re
import subprocess
import sys
from pathlib import Path

DECL = re.compile(r"\b(cbev_[A-Za-z0-9_]+)\s*\(")


def declared(include_dirs):
    names = set()
    for d in include_dirs:
        for h in sorted(Path(d).glob("cbevents/*.h")):
            text = h.read_text()
            text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
            text = re.sub(r"//[^\n]*", " ", text)
            # Macros (function-like or not) are no symbols.
            text = re.sub(r"^\s*#(?:[^\n]*\\\n)*[^\n]*", " ", text, flags=re.M)
            # A declaration at file scope: the name followed by '(' and
            # not inside a parameter list (depth 0) nor a typedef.
            for stmt in text.split(";"):
                stmt = stmt.strip()
                if not stmt or stmt.startswith("typedef") or "{" in stmt:
                    stmt = stmt.rsplit("}", 1)[-1].strip()
                    if not stmt or stmt.startswith("typedef"):
                        continue
                m = DECL.search(stmt)
                if m and "(*" not in stmt[: m.start()]:
                    names.add(m.group(1))
    return names


def nm(args):
    out = subprocess.run(["nm"] + args, check=True, capture_output=True, text=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        # "A" is the version node (CBEVENTS_0), no symbol of the API.
        if len(parts) == 3 and parts[1] not in ("U", "w", "v", "A"):
            syms.add(parts[2].split("@")[0])
    return syms


def main(argv):
    so = argv[argv.index("--so") + 1]
    ar = argv[argv.index("--a") + 1]
    dirs = argv[1 : argv.index("--so")]
    want = declared(dirs)
    failed = False
    if len(want) < 50:
        print("check_symbols: only %d functions found in the headers" % len(want))
        return 1
    got = nm(["-D", "--defined-only", so])
    for name in sorted(got - want):
        print("exported but not declared in a public header: %s" % name)
        failed = True
    for name in sorted(want - got):
        print("declared in a public header but not exported: %s" % name)
        failed = True
    for name in sorted(nm(["-g", "--defined-only", ar])):
        if not name.startswith("cbev_"):
            print("libcbevents.a defines a global without the cbev_ prefix: %s" % name)
            failed = True
    if not failed:
        print("check_symbols: %d exported functions match the headers" % len(want))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
