#!/usr/bin/env python3
"""check_exports.py LIB HEADER...: the dynamic symbols LIB defines are exactly the functions the
installed HEADERs declare with GX_API, and all of them start with gx_.  Prints both differences."""
import re
import subprocess
import sys


def declared(headers):
    names = set()
    for path in headers:
        text = open(path).read()
        text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)        # comments may mention GX_API
        text = re.sub(r'^#.*$', ' ', text, flags=re.M)               # and GX_API's own #define
        for m in re.finditer(r'\bGX_API\b([^;{]*?)\b(\w+)\s*\(', text):
            names.add(m.group(2))
    return names


def exported(lib):
    out = subprocess.run(['nm', '-D', '--defined-only', lib], check=True, capture_output=True,
                         text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in 'TtDdBbRrVvWwi':
            names.add(parts[2])
    return names


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    want, have = declared(sys.argv[2:]), exported(sys.argv[1])
    bad = 0
    for name in sorted(have - want):
        print(f'exported but not declared with GX_API in an installed header: {name}')
        bad += 1
    for name in sorted(want - have):
        print(f'declared with GX_API but not exported: {name}')
        bad += 1
    for name in sorted(n for n in have if not n.startswith('gx_')):
        print(f'exported without the gx_ prefix: {name}')
        bad += 1
    print(f'{len(have)} exported, {len(want)} declared, {bad} problem(s)')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
