#!/usr/bin/env python3
"""Each module's files call one way: fail on a cycle between files of one
module of a static library, naming the edges that close it.

The graph is what the linker sees: for every object in the archive, the
global symbols it defines and the ones it leaves undefined (nm).  An edge
a.c -> b.c means a.c refers to a function or object b.c defines: a call, or
a function handed on as a callback (its file depends on it all the same).
Reading the objects rather than grepping the sources makes comments,
strings, macros and local names that shadow another file's function
irrelevant; static functions never cross files, so they need no care.

A module is the files sharing a name up to the first '_' (vu.c, vu_msg.c,
vu_req.c ... are "vu"); calls between modules are not this check's concern.

usage: file_layers.py NM ARCHIVE [MODULE...]   (no MODULE: every module)
"""
import os
import subprocess
import sys


def symbols(nm, archive):
    """{file: (global symbols it defines, symbols it leaves undefined)}.

    nm -A -P prints one line a symbol: "ARCHIVE[MEMBER]: NAME TYPE ...",
    the member being the object's path in a thin archive; an upper-case
    type other than U is a global definition."""
    out = subprocess.run([nm, '-A', '-P', archive], check=True,
                         capture_output=True, text=True).stdout
    files = {}
    for line in out.splitlines():
        where, _, rest = line.partition(': ')
        parts = rest.split()
        if len(parts) < 2 or not where.endswith(']'):
            continue
        obj = os.path.basename(where[where.index('[') + 1:-1])
        name = obj[:-2] if obj.endswith('.o') else obj
        defs, undef = files.setdefault(name, (set(), set()))
        if parts[1] == 'U':
            undef.add(parts[0])
        elif parts[1].isupper():
            defs.add(parts[0])
    return files


def module(stem):
    base = stem[:-2] if stem.endswith('.c') else stem
    return base.split('_', 1)[0]


def cycles(edges, nodes):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return comps


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    nm, archive, wanted = sys.argv[1], sys.argv[2], set(sys.argv[3:])
    files = symbols(nm, archive)
    owner = {}
    for f, (defs, _) in files.items():
        for s in defs:
            owner[s] = f
    bad = 0
    mods = sorted({module(f) for f in files})
    for m in mods:
        if wanted and m not in wanted:
            continue
        members = {f for f in files if module(f) == m}
        edges = {}
        for f in members:
            for s in files[f][1]:
                g = owner.get(s)
                if g in members and g != f:
                    edges.setdefault(f, {}).setdefault(g, []).append(s)
        for f in sorted(edges):
            for g in sorted(edges[f]):
                print(f'{m}: {f} -> {g} ({", ".join(sorted(edges[f][g]))})')
        for comp in cycles(edges, members):
            bad += 1
            inside = set(comp)
            print(f'FAIL {m}: files call each other in a cycle: '
                  f'{" ".join(comp)}')
            for f in comp:
                for g in sorted(edges.get(f, {})):
                    if g in inside:
                        print(f'  edge {f} -> {g}: '
                              f'{", ".join(sorted(edges[f][g]))}')
    if wanted - set(mods):
        print(f'FAIL no such module: {" ".join(sorted(wanted - set(mods)))}')
        bad += 1
    sys.exit(1 if bad else 0)


if __name__ == '__main__':
    main()
