#!/usr/bin/env python3
"""check_doc_paths.py SRCDIR: every file README.md and docs/*.md point at exists in the repository.

Checked: the target of every relative markdown link, every word that starts with one of the
repository's top-level folders (`docs/x.md`, `scripts/gx-netns`, `tests/test_loop.c`, in backticks,
in code blocks or in prose) or with a build folder (`build/apps/gx-bench`), every `name.md`, and
every `./program` a command runs.  A path resolves
when it exists from the repository root or from the document's folder; a built program resolves
through its source (`apps/gx-info` -> apps/gx_info.c, `tests/test_codec` -> tests/test_codec.c,
`./allreduce` -> examples/allreduce.c).
Prints each path that does not resolve with its file and line; exit 1 if there is one."""
import glob
import os
import re
import sys

# `./X` words that stand for "your program", not a file of the repository
PLACEHOLDERS = {'./prog'}
# folders made by the build or by the scripts, not kept in the repository
GENERATED = ('build', 'results')


def top_dirs(src):
    return sorted(d for d in os.listdir(src)
                  if os.path.isdir(os.path.join(src, d)) and not d.startswith('.') and not d.startswith(GENERATED))


def resolves(src, docdir, path):
    path = path.split('#')[0].rstrip('.,:;)')
    if not path:
        return True
    for base in (src, docdir):
        full = os.path.normpath(os.path.join(base, path))
        if os.path.exists(full) or ('*' in path and glob.glob(full)):
            return True
    # ./allreduce: a program the documents have you build from examples/
    if path.startswith('./') and os.path.exists(os.path.join(src, 'examples', path[2:] + '.c')):
        return True
    # a built program named after its source: apps/gx-info <- apps/gx_info.c, tests/test_x <- tests/test_x.c
    folder, name = os.path.split(path)
    if folder and not os.path.splitext(name)[1]:
        for cand in (name.replace('-', '_') + '.c', name + '.c'):
            if os.path.exists(os.path.join(src, folder, cand)):
                return True
    return False


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..')
    src = os.path.abspath(src)
    docs = [os.path.join(src, 'README.md')] + sorted(glob.glob(os.path.join(src, 'docs', '*.md')))
    dirs = '|'.join(re.escape(d) for d in top_dirs(src))
    in_repo = re.compile(rf'(?<![\w./$-])((?:{dirs})/[\w.*/-]*)')
    # build/apps/gx-bench, build-san/tests/test_loop: a program built from the repository's sources
    built = re.compile(rf'(?<![\w./$-])build[\w-]*/((?:{dirs})/[\w.*/-]*)')
    md_name = re.compile(r'(?<![\w/.-])([\w-]+\.md)\b')
    link = re.compile(r'\]\(([^)\s]+)\)')
    dot_prog = re.compile(r'(?<![\w/.])(\./[\w][\w.-]*(?:/[\w.-]+)*)')
    bad = 0
    checked = 0
    for doc in docs:
        docdir = os.path.dirname(doc)
        rel = os.path.relpath(doc, src)
        for n, line in enumerate(open(doc, encoding='utf-8'), 1):
            found = []
            for m in link.finditer(line):
                target = m.group(1)
                if not re.match(r'^[a-z]+:', target) and not target.startswith('#'):
                    found.append(target)
            found += in_repo.findall(line)
            found += built.findall(line)
            found += md_name.findall(line)
            found += [p for p in dot_prog.findall(line)
                      if p not in PLACEHOLDERS and not p[2:].startswith(GENERATED)]
            for path in dict.fromkeys(found):      # once per line, in order
                checked += 1
                if not resolves(src, docdir, path):
                    print(f'{rel}:{n}: {path} is not in the repository')
                    bad += 1
    print(f'{checked} paths in {len(docs)} documents, {bad} not found')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
