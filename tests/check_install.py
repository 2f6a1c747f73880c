#!/usr/bin/env python3
"""check_install.py --meson MESON --build BUILDDIR --src SRCDIR: gx as a user outside the tree sees it.

1. `meson install --destdir` of the build into a temporary root;
2. the installed headers include nothing of DPDK, verbs, hwloc or libsodium;
3. `pkg-config --cflags --libs gx` against that root (PKG_CONFIG_LIBDIR = the installed pkgconfig
   folder only, PKG_CONFIG_SYSROOT_DIR = the root; and again with --define-variable=prefix) gives
   gx's own -I and -lgx: no DPDK path, no -march, no -include, and needs no other .pc file;
4. examples/allreduce.c builds with exactly those flags (cc -Werror), and with examples/Makefile;
5. the program, linked to the installed libgx.so (LD_LIBRARY_PATH; checked with ldd), runs as 2 ranks
   over udp on 127.0.0.1 (GX_RANK/GX_SIZE/GX_STORE) and both print the right sum;
6. the installed gx-bench --version names this version;
and <gx/gx.h> alone compiles as strict ISO C11 and links from C++ (extern "C").
Exit 0 when all hold; prints what did not."""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

failures = []


def fail(msg):
    failures.append(msg)
    print(f'FAIL: {msg}', flush=True)


def run(cmd, env=None, cwd=None, timeout=120):
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def check_flags(what, flags, root):
    """gx's own flags only, all pointing into the installed root."""
    print(f'{what}: {flags}')
    for bad, why in (('dpdk', 'a DPDK path'), ('-march', '-march'), ('-include', '-include'),
                     ('libnl3', "DPDK's libnl path"), ('dbus', "DPDK's dbus path")):
        if bad in flags:
            fail(f'{what} has {why}: {flags}')
    for tok in flags.split():
        if tok.startswith(('-I', '-L')) and not tok[2:].startswith(root):
            fail(f'{what}: {tok} is outside the installed tree {root}')
    if '-lgx' not in flags.split():
        fail(f'{what} lacks -lgx: {flags}')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--meson', required=True)
    ap.add_argument('--build', required=True)
    ap.add_argument('--src', required=True)
    ap.add_argument('--version', required=True)
    a = ap.parse_args()
    cc = os.environ.get('CC', 'cc')
    # a sanitized libgx.so needs its runtime loaded first, which a plain program does not do
    rc, out, _ = run([a.meson, 'introspect', '--buildoptions', a.build])
    sanitize = [o['value'] for o in json.loads(out) if o['name'] == 'b_sanitize'] if rc == 0 else []
    if sanitize and sanitize[0] != 'none':
        print('SKIP: a sanitized build (b_sanitize): the installed library needs the sanitizer runtime')
        return 77
    tmp = tempfile.mkdtemp(prefix='gx-install-')
    try:
        root = os.path.join(tmp, 'root')
        rc, out, err = run([a.meson, 'install', '-C', a.build, '--destdir', root, '--no-rebuild', '--quiet'])
        if rc:
            fail(f'meson install --destdir failed ({rc}): {err.strip()}')
            return 1
        pcs = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f == 'gx.pc']
        if len(pcs) != 1:
            fail(f'expected one installed gx.pc, found {pcs}')
            return 1
        pcdir = os.path.dirname(pcs[0])
        print(open(pcs[0]).read())

        # 2. public headers: no DPDK, verbs, hwloc, libsodium
        incs = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith('.h')]
        if not any(p.endswith('/gx/gx.h') for p in incs):
            fail('gx/gx.h is not installed')
        for p in incs:
            for n, line in enumerate(open(p), 1):
                if re.match(r'\s*#\s*include\s*[<"](rte_|infiniband/|rdma/|hwloc|sodium)', line):
                    fail(f'{os.path.relpath(p, root)}:{n} includes a dependency\'s header: {line.strip()}')

        # 3. pkg-config against the installed tree only (no other .pc file reachable)
        env = dict(os.environ, PKG_CONFIG_LIBDIR=pcdir, PKG_CONFIG_PATH='', PKG_CONFIG_SYSROOT_DIR=root)
        rc, flags, err = run(['pkg-config', '--cflags', '--libs', 'gx'], env=env)
        if rc:
            fail(f'pkg-config --cflags --libs gx failed: {err.strip()}')
            return 1
        flags = flags.strip()
        check_flags('pkg-config (sysroot)', flags, root)
        env_nosys = dict(os.environ, PKG_CONFIG_LIBDIR=pcdir, PKG_CONFIG_PATH='')
        rc, prefix, _ = run(['pkg-config', '--variable=prefix', 'gx'], env=env_nosys)
        rc2, flags2, err2 = run(['pkg-config', f'--define-variable=prefix={root}{prefix.strip()}',
                                 '--cflags', '--libs', 'gx'], env=env_nosys)
        if rc or rc2:
            fail(f'pkg-config --define-variable=prefix failed: {err2.strip()}')
        else:
            check_flags('pkg-config (--define-variable=prefix)', flags2.strip(), root)
        libdir = [t[2:] for t in flags.split() if t.startswith('-L')]
        if not libdir:
            fail(f'no -L in {flags}')
            return 1

        # 4. the example, with exactly those flags, then with its Makefile
        exe = os.path.join(tmp, 'allreduce')
        cmd = [cc, '-Wall', '-Wextra', '-Werror', os.path.join(a.src, 'examples', 'allreduce.c'),
               '-o', exe] + flags.split()
        print(' '.join(cmd))
        rc, out, err = run(cmd)
        if rc:
            fail(f'examples/allreduce.c does not build against the installed tree:\n{err}')
            return 1
        # 4b. <gx/gx.h> alone compiles as strict ISO C11 (no POSIX feature macros) and as C++
        #     (extern "C": the same symbols link from a C++ program)
        tu = os.path.join(tmp, 'only_header.c')
        with open(tu, 'w') as f:
            f.write('#include <gx/gx.h>\nint main(void) { return gx_status_str(GX_OK)[0] == 0; }\n')
        cflags = [x for x in flags.split() if x.startswith('-I')]
        libs = [x for x in flags.split() if not x.startswith('-I')]
        rc, out, err = run([cc, '-std=c11', '-pedantic', '-Wall', '-Werror', tu, '-o', tu + '.bin'] + cflags + libs)
        if rc:
            fail(f'<gx/gx.h> does not compile as strict C11:\n{err}')
            return 1
        cxx = os.environ.get('CXX', 'c++')
        if shutil.which(cxx):
            tcc = os.path.join(tmp, 'only_header.cc')
            shutil.copy(tu, tcc)
            rc, out, err = run([cxx, '-std=c++17', '-Wall', '-Werror', tcc, '-o', tcc + '.bin'] + cflags + libs)
            if rc:
                fail(f'<gx/gx.h> does not compile and link as C++:\n{err}')
                return 1
        ex = os.path.join(tmp, 'examples')
        shutil.copytree(os.path.join(a.src, 'examples'), ex)
        rc, out, err = run(['make', '-C', ex], env=env)
        if rc:
            fail(f'make -C examples failed:\n{out}{err}')

        # 5. two ranks over udp on loopback, against the installed libgx.so
        renv = dict(os.environ, LD_LIBRARY_PATH=libdir[0], GX_SIZE='2', GX_TRANSPORT='udp',
                    GX_UDP_IP='127.0.0.1', GX_STORE=f'127.0.0.1:{free_port()}', GX_STORE_TIMEOUT_MS='20000',
                    GX_PEER_TIMEOUT_MS='10000')
        rc, out, err = run(['ldd', exe], env=renv)
        m = re.search(r'libgx\.so\S*\s+=>\s+(\S+)', out)
        if not m or not m.group(1).startswith(root):
            fail(f'the example does not load the installed libgx.so: {m.group(1) if m else out}')
        procs = []
        for r in (0, 1):
            procs.append(subprocess.Popen([exe], env=dict(renv, GX_RANK=str(r)), stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
        for r, p in enumerate(procs):
            try:
                out, err = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
                fail(f'rank {r} did not finish in 60 s')
            print(f'rank {r}: exit {p.returncode}: {out.strip()} {err.strip()}')
            if p.returncode != 0:
                fail(f'rank {r} exited {p.returncode}: {err.strip()}')
            if not re.search(rf'rank {r} of 2: \d+ floats, sum 3 \(expected 3\): ok$', out.strip()):
                fail(f'rank {r} printed {out.strip()!r}, not the sum 3')

        # 6. the installed tools say what they are
        bindir = os.path.join(os.path.dirname(os.path.dirname(libdir[0].rstrip('/'))), 'bin')
        bench = next((os.path.join(d, 'gx-bench') for d, _, fs in os.walk(root) if 'gx-bench' in fs), None)
        if not bench:
            fail(f'gx-bench is not installed (looked under {root}, e.g. {bindir})')
        else:
            rc, out, err = run([bench, '--version'], env=renv)
            if rc or f'gx-bench {a.version}' not in out or 'transports:' not in out:
                fail(f'installed gx-bench --version: exit {rc}: {out}{err}')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f'{len(failures)} failure(s)' if failures else 'installed gx: pkg-config, example build and run: ok')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
