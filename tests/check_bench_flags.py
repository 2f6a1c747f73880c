#!/usr/bin/env python3
"""check_bench_flags.py GX_BENCH: gx-bench's answers to flags a user got wrong, and the limits it keeps.

Each bad flag must exit 2 with a message that names the flag as typed and says what it takes (no
run, no "out of memory for 18446744073709551612 bytes").  With 2 ranks over udp on loopback:
--path raw beyond one packet is an error, stream's -t bounds the run, the compressed check prints
the error of one step and the smaller error of the mean over steps, --version names the build.
Exit 0 when all hold; prints what did not."""
import re
import socket
import subprocess
import sys
import time

failures = []


def fail(msg):
    failures.append(msg)
    print(f'FAIL: {msg}', flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def one(bench, args, timeout=30):
    p = subprocess.run([bench] + args, capture_output=True, text=True, timeout=timeout,
                       env={'PATH': '/usr/bin:/bin'})
    return p.returncode, p.stdout, p.stderr


def two(bench, args, timeout=60):
    """Both ranks of a 2-rank job over udp on 127.0.0.1: [(status, stdout, stderr)] and seconds."""
    env = {'PATH': '/usr/bin:/bin', 'GX_SIZE': '2', 'GX_STORE': f'127.0.0.1:{free_port()}',
           'GX_TRANSPORT': 'udp', 'GX_UDP_IP': '127.0.0.1', 'GX_STORE_TIMEOUT_MS': '20000'}
    t0 = time.monotonic()
    procs = [subprocess.Popen([bench] + args, env=dict(env, GX_RANK=str(r)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    res = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            err += f'\n(killed after {timeout} s)'
        res.append((p.returncode, out, err))
    return res, time.monotonic() - t0


def main():
    bench = sys.argv[1]
    # 1. flags refused before anything starts: (arguments, text the message must hold)
    bad = [
        (['allreduce', '-e', '99999999999999999999'], '-e 99999999999999999999: give a size from 1 to 16G'),
        (['allreduce', '-b', '17G'], '-b 17G: give a size'),
        (['allreduce', '-e', '-4'], '-e -4: give a size'),
        (['allreduce', '--warm-ms', '-5'], '--warm-ms -5: give a whole number from 0'),
        (['allreduce', '--warm-ms=-5'], '--warm-ms -5: give a whole number'),
        (['allreduce', '-n', '99999999999999999999'], '-n 99999999999999999999: give a whole number'),
        (['allreduce', '-f', 'nan'], '-f nan: give a number'),
        (['allreduce', '--transport='], '--transport: empty'),
        (['allreduce', '--store-serve', '5'], '--store-serve: 5 is out of range: give -1 to 1'),
        (['allreduce', '--mtu', '0'], '--mtu: 0 is out of range: give 576 to 65535'),
        (['allreduce', '--window', '0'], '--window: 0 is out of range: give 64 to 32768'),
        (['allreduce', '--peer-timeout-ms', '0'], '--peer-timeout-ms: 0 is out of range'),
        (['stream', '-t', '0'], '-t 0: give a number from 0.01 to 3600'),
        (['pingpong', '-e', '1T'], '-e 1T: give a size'),
    ]
    for args, says in bad:
        rc, out, err = one(bench, args)
        if rc != 2 or says not in err:
            fail(f'gx-bench {" ".join(args)}: exit {rc}, stderr {err.strip()!r} (want exit 2 and {says!r})')
        if 'out of memory' in err or out.strip():
            fail(f'gx-bench {" ".join(args)} ran something: {out.strip()!r} {err.strip()!r}')

    # 2. --version
    rc, out, err = one(bench, ['--version'])
    if rc != 0 or not re.match(r'gx-bench \d+\.\d+\.\d+\n', out) or 'transports: ' not in out or \
            'codec kernels compiled in' not in out:
        fail(f'gx-bench --version: exit {rc}: {out!r} {err!r}')

    # 3. raw pingpong beyond one packet: an error on both ranks, not an empty run that exits 0
    res, _ = two(bench, ['pingpong', '--path', 'raw', '-b', '1M', '-n', '10', '-w', '1'])
    for r, (rc, out, err) in enumerate(res):
        if rc != 2 or '--path raw carries one packet' not in err:
            fail(f'rank {r}: pingpong --path raw -b 1M: exit {rc}: {err.strip()!r}')

    # 4. stream -t bounds the run: 3 sizes (64, 256, 1024 B) of 0.3 s each, well within 15 s, a row each
    res, secs = two(bench, ['stream', '-t', '0.3', '-b', '64', '-e', '1024', '-f', '4'])
    rows = [l for l in res[0][1].splitlines() if l.startswith('gx,') and ',stream:reliable,' in l]
    if any(rc != 0 for rc, _, _ in res) or len(rows) != 3 or secs > 15:
        fail(f'stream -t 0.3 over 3 sizes: exits {[r[0] for r in res]}, {len(rows)} rows, {secs:.1f} s: '
             f'{res[0][2].strip()!r} {res[1][2].strip()!r}')
    else:
        print(f'stream -t 0.3, 3 sizes: {secs:.1f} s')

    # 5. the compressed check: the error of one step and, smaller, of the mean over steps
    res, _ = two(bench, ['allreduce', '--codec', 'qsgd:bits=4,bucket=32', '-b', '64K', '-e', '64K', '-n', '2', '-w', '1',
                         '--warm-ms', '0'])
    m = re.search(r'relative error against the exact sum ([\d.e+-]+) after one step, ([\d.e+-]+) averaged '
                  r'over (\d+) steps', res[0][1])
    if any(rc != 0 for rc, _, _ in res) or not m:
        fail(f'allreduce --codec qsgd:bits=4,bucket=32: exits {[r[0] for r in res]}: {res[0][1]!r} {res[0][2]!r}')
    else:
        one_step, mean = float(m.group(1)), float(m.group(2))
        print(f'qsgd:bits=4,bucket=32, 64 KiB: relative error {one_step} after one step, {mean} over {m.group(3)} steps')
        if not mean < one_step / 4:
            fail(f'the mean over {m.group(3)} steps ({mean}) is not well below one step ({one_step})')
    print(f'{len(failures)} failure(s)' if failures else 'gx-bench flags and limits: ok')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
