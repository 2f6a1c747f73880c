#!/usr/bin/env python3
"""check_compare.py --src SRCDIR --build BUILDDIR: scripts/gx-compare loopback end to end.

Runs `scripts/gx-compare loopback -b 4 -e 64K -n 3 -w 1` into a temporary directory and checks that
compare.csv starts with apps/bench.h's header, has gx, mpi and gloo rows for the same sizes, every row
with wrong=0, that the summary has a gx/best_peer ratio per size, and that compare.png is a PNG.
Needs root (as the other 'net' tests; Open MPI then runs with --allow-run-as-root) and a build with
mpi-allreduce-bench and gloo-allreduce-bench: otherwise exit 77 (skipped), or fail with
GX_TEST_REQUIRE_ALL=1."""
import argparse
import csv
import os
import subprocess
import sys
import tempfile

failures = []


def fail(msg):
    failures.append(msg)
    print(f'FAIL: {msg}', flush=True)


def skip(why):
    if os.environ.get('GX_TEST_REQUIRE_ALL') == '1':
        print(f'FAIL (GX_TEST_REQUIRE_ALL=1, cannot skip): {why}')
        sys.exit(1)
    print(f'SKIP: {why}')
    sys.exit(77)


def bench_header(src):
    # the one header every benchmark prints, from its definition
    lines = open(os.path.join(src, 'apps', 'bench.h')).read().splitlines()
    for i, line in enumerate(lines):
        if line.startswith('#define GX_BENCH_CSV_HEADER'):
            return lines[i + 1].strip().strip('"')
    raise SystemExit('GX_BENCH_CSV_HEADER not found in apps/bench.h')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--src', required=True)
    ap.add_argument('--build', required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        skip('needs root, like the other net tests')
    for prog in ('gx-bench', 'mpi-allreduce-bench', 'gloo-allreduce-bench'):
        if not os.access(os.path.join(args.build, 'apps', prog), os.X_OK):
            skip(f'this build has no apps/{prog} (Open MPI or Gloo not found at configure time)')
    header = bench_header(args.src)
    with tempfile.TemporaryDirectory(prefix='gx-check-compare.') as out:
        cmd = [os.path.join(args.src, 'scripts', 'gx-compare'), 'loopback', '--build', args.build,
               '--out', out, '-b', '4', '-e', '64K', '-n', '3', '-w', '1']
        print('running:', ' '.join(cmd), flush=True)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=110)
        print(p.stdout[-3000:])
        if p.returncode != 0:
            print(p.stderr[-3000:])
            fail(f'gx-compare exited {p.returncode}')
        path = os.path.join(out, 'compare.csv')
        if not os.path.exists(path):
            fail('no compare.csv')
        else:
            lines = open(path).read().splitlines()
            if not lines or lines[0] != header:
                fail(f'compare.csv does not start with the benchmark header: {lines[:1]}')
            rows = list(csv.DictReader(lines))
            sizes = {}
            for r in rows:
                sizes.setdefault(r['peer'], set()).add(int(r['bytes']))
                if r['wrong'] != '0':
                    fail(f"wrong={r['wrong']} in {r['peer']} {r['transport']} {r['bytes']} B")
                if r['nranks'] != '2' or r['oversub'] != '1':
                    fail(f"{r['peer']} {r['bytes']} B: nranks {r['nranks']} oversub {r['oversub']}, want 2 and 1")
            want = {4 << i for i in range(15)}          # 4 B to 64 KiB by 2
            for peer in ('gx', 'mpi', 'gloo'):
                if sizes.get(peer) != want:
                    fail(f'{peer}: sizes {sorted(sizes.get(peer, []))}, want 4..65536 by 2')
            gloo = [r for r in rows if r['peer'] == 'gloo']
            if gloo and not all(r['transport'].startswith('tcp:') for r in gloo):
                fail('gloo rows do not name their variant (transport tcp:ALGO)')
        spath = os.path.join(out, 'summary.csv')
        if not os.path.exists(spath):
            fail('no summary.csv')
        else:
            srows = list(csv.DictReader(open(spath)))
            if len(srows) != 15 or any(not r['gx/best_peer'] or float(r['gx/best_peer']) <= 0 for r in srows):
                fail(f'summary.csv: {len(srows)} rows, want 15 with a gx/best_peer ratio each')
        png = os.path.join(out, 'compare.png')
        if not os.path.exists(png) or open(png, 'rb').read(8) != b'\x89PNG\r\n\x1a\n':
            fail('compare.png missing or not a PNG')
    if failures:
        print(f'{len(failures)} check(s) failed')
        return 1
    print('gx-compare loopback: gx, mpi and gloo rows, wrong=0, summary and PNG: OK')
    return 0


if __name__ == '__main__':
    sys.exit(main())
