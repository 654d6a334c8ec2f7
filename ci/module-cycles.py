#!/usr/bin/env python3
"""Import circles between the modules of a crate: `python3 ci/module-cycles.py harness/src [DEPTH]`.

Reads every .rs file under the folder, takes each `crate::a::b` and `super::x` path it
names (outside `#[cfg(test)] mod tests`), and links the module of the file to the module
the path names, cut to DEPTH levels (1: top-level modules such as `peer`, `capture`;
default: every module). Prints each circle (a strongly connected set of two or more
modules) with its edges and exits 1, or prints `no cycles` and exits 0. A parent's
relative `use child::...` is not a dependency (a module always owns its children), so
only circles between siblings and across the tree count.
"""
import os, re, sys, collections
root = sys.argv[1]  # e.g. harness/src
depth = int(sys.argv[2]) if len(sys.argv) > 2 else 99
mods = {}
for dp, dn, fn in os.walk(root):
    for f in fn:
        if not f.endswith('.rs'): continue
        p = os.path.join(dp, f)
        rel = os.path.relpath(p, root)[:-3]
        parts = rel.split('/')
        if parts[-1] in ('mod', 'lib'): parts = parts[:-1]
        mods['::'.join(parts)] = p
def norm(path):
    parts = path.split('::')
    # longest existing module prefix
    for i in range(len(parts), 0, -1):
        m = '::'.join(parts[:i])
        if m in mods: return '::'.join(parts[:min(i, depth)])
    return None
edges = collections.defaultdict(set)
for m, p in mods.items():
    src = open(p).read()
    # strip test modules
    src = re.split(r'#\[cfg\(test\)\]\s*mod tests', src)[0]
    src = re.sub(r'//[^\n]*', '', src)
    me = '::'.join(m.split('::')[:depth]) if m else ''
    for mm in re.finditer(r'crate::([a-z_0-9:]+(?:::\{[^}]*\})?)', src):
        t = mm.group(1)
        # expand braces
        if '{' in t:
            base, inner = t.split('::{', 1)
            items = [base + '::' + x.strip().split(' ')[0] for x in re.split(r',', inner.rstrip('}')) if x.strip()]
        else: items = [t]
        for it in items:
            it = it.rstrip(':')
            n = norm(it)
            if n is not None and n != me and n != '':
                edges[me].add(n)
    # super:: references
    for mm in re.finditer(r'super::([a-z_0-9]+)', src):
        parent = '::'.join(m.split('::')[:-1])
        t = (parent + '::' + mm.group(1)) if parent else mm.group(1)
        n = norm(t)
        if n and n != me: edges[me].add(n)
# tarjan
index = {}; low = {}; st = []; on = set(); sccs = []; i = [0]
sys.setrecursionlimit(10000)
def sc(v):
    index[v] = low[v] = i[0]; i[0] += 1; st.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in index: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        c = []
        while True:
            w = st.pop(); on.discard(w); c.append(w)
            if w == v: break
        sccs.append(c)
nodes = set(edges) | {x for s in edges.values() for x in s}
for v in sorted(nodes):
    if v not in index: sc(v)
bad = [c for c in sccs if len(c) > 1]
for c in bad:
    print('CYCLE:', sorted(c))
    cs = set(c)
    for v in sorted(c):
        print('   ', v, '->', sorted(edges[v] & cs))
if not bad: print('no cycles')
sys.exit(1 if bad else 0)
