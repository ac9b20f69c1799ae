#!/usr/bin/env python3
"""List import circles between the files of each crate's src/.

Usage: import_circles.py [CRATE_DIR ...]   (default: every crate under crates/)

For every crate root (src/lib.rs, src/main.rs, src/bin/*.rs) the module tree is built from
its `mod` declarations (file modules and inline `mod x { ... }` blocks). Every reference to
the crate's own modules is collected: `use` trees, and paths starting with `crate::`,
`self::`, `super::`, `$crate::` or the name of a child module. A reference is resolved to the
file that defines the item, following `use`/`pub use` re-exports (so `crate::Foo`, where
lib.rs has `pub use foo::Foo`, points at foo.rs, not at lib.rs). Paths into other crates
are not followed. Each reference is an edge "file A uses file B"; `mod` declarations are not
edges. Comments (including doc links) and string literals are ignored.

Test code is ignored: any item under `#[cfg(test)]` (typically `mod tests { use super::*; }`)
and every module file behind such an item add no edge, since a test module importing its
parent is not a circle that matters.

Prints the circles (elementary cycles) of each crate's file graph, shortest first (at most
CAP per group of files that import each other, the rest counted), then every edge inside
that group with its first reference, and exits 1 if there is any circle.
"""

import re
import sys
from pathlib import Path

CAP = 40  # circles printed per strongly connected component (the shortest found)
COUNT_CAP = 2000  # circles counted per strongly connected component


# ---------------------------------------------------------------------------- tokens


def tokenize(text):
    """Rust tokens as (kind, value, line); comments and literal contents are dropped."""
    toks = []
    i, n, line = 0, len(text), 1
    ident = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    line += text[i] == "\n"
                    i += 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            line += text.count("\n", i, j)
            toks.append(("lit", '""', line))
            i = j + 1
        elif c == "'":
            if i + 1 < n and text[i + 1] == "\\":
                j = text.find("'", i + 3)
                toks.append(("lit", "''", line))
                i = j + 1
            elif i + 2 < n and text[i + 2] == "'":
                toks.append(("lit", "''", line))
                i += 3
            else:
                m = ident.match(text, i + 1)
                toks.append(("lifetime", m.group(0) if m else "", line))
                i = m.end() if m else i + 1
        elif c.isdigit():
            m = re.compile(r"[0-9][0-9A-Za-z_]*").match(text, i)
            toks.append(("lit", m.group(0), line))
            i = m.end()
        elif ident.match(text, i):
            m = ident.match(text, i)
            word, j = m.group(0), m.end()
            raw = re.compile(r"#*\"").match(text, j) if word in ("r", "br", "cr") else None
            if raw:
                hashes = raw.group(0)[:-1]
                end = text.find('"' + hashes, raw.end())
                end = n if end < 0 else end
                line += text.count("\n", i, end)
                toks.append(("lit", '""', line))
                i = end + 1 + len(hashes)
            elif word in ("b", "c") and j < n and text[j] in "\"'":
                i = j  # byte/C string or byte char: lex the literal next
            elif word == "r" and text.startswith("#", j) and ident.match(text, j + 1):
                m2 = ident.match(text, j + 1)
                toks.append(("ident", m2.group(0), line))
                i = m2.end()
            else:
                toks.append(("ident", word, line))
                i = j
        elif text.startswith("::", i):
            toks.append(("punct", "::", line))
            i += 2
        else:
            toks.append(("punct", c, line))
            i += 1
    return toks


def matching(toks, i):
    """Index of the bracket closing the one at toks[i]."""
    pairs = {"{": "}", "(": ")", "[": "]"}
    open_, close = toks[i][1], pairs[toks[i][1]]
    depth = 0
    for j in range(i, len(toks)):
        v = toks[j][1]
        if toks[j][0] == "punct" and v == open_:
            depth += 1
        elif toks[j][0] == "punct" and v == close:
            depth -= 1
            if depth == 0:
                return j
    return len(toks) - 1


def is_cfg_test(attr):
    """Whether attribute tokens (inside #[...]) are a cfg that needs `test`."""
    words = [t[1] for t in attr if t[0] == "ident"]
    return bool(words) and words[0] == "cfg" and "test" in words and "not" not in words


# ---------------------------------------------------------------------------- modules

ITEM_KEYWORDS = {"fn", "struct", "enum", "trait", "type", "const", "static", "union"}


class Module:
    def __init__(self, name, file, parent):
        self.name, self.file, self.parent = name, file, parent
        self.children = {}
        self.defined = set()
        self.imports = {}  # name -> (segments, context module)
        self.globs = []  # (segments, context module)
        self.refs = []  # (segments, context module, line, text)


def parse_use_tree(toks, i, end, prefix, out):
    """Parses a use tree in toks[i:end]; appends (segments, alias, glob) to out; returns the next index."""
    segs = list(prefix)
    while i < end:
        kind, v, _ = toks[i]
        if kind == "punct" and v == "::":
            i += 1
        elif kind == "punct" and v == "*":
            out.append((segs, None, True))
            return i + 1
        elif kind == "punct" and v == "{":
            close = matching(toks, i)
            j = i + 1
            while j < close:
                j = parse_use_tree(toks, j, close, segs, out)
                if j < close and toks[j][1] == ",":
                    j += 1
            return close + 1
        elif kind == "ident" and v == "as":
            alias = toks[i + 1][1]
            out.append((segs, alias, False))
            return i + 2
        elif kind == "ident" or (kind == "punct" and v == "$"):
            if kind == "punct":  # $crate
                i += 1
                v = "$" + toks[i][1]
            if v == "self" and segs and segs == list(prefix) and prefix:
                pass  # `a::{self, ...}` names `a` itself
            else:
                segs.append(v)
            i += 1
        else:
            break
    if segs:
        out.append((segs, None, False))
    return i


class Crate:
    def __init__(self, root_file, src):
        self.src = src
        self.modules = []
        self.root = self.load(None, "crate", root_file, True)

    def load(self, parent, name, path, owns_dir):
        mod = Module(name, path, parent)
        self.modules.append(mod)
        toks = tokenize(path.read_text(encoding="utf-8"))
        base = path.parent if owns_dir else path.parent / path.stem
        self.parse(mod, toks, 0, len(toks), base)
        return mod

    def child_file(self, base, name):
        for cand in (base / f"{name}.rs", base / name / "mod.rs"):
            if cand.exists():
                return cand
        return None

    def parse(self, mod, toks, i, end, base):
        """Reads the items of `mod` in toks[i:end] (its body), recursing into inline modules."""
        test_next = False
        depth = 0
        while i < end:
            kind, v, line = toks[i]
            if kind == "punct" and v == "#":
                inner = i + 1 < end and toks[i + 1][1] == "!"
                j = i + 2 if inner else i + 1
                if j < end and toks[j][1] == "[":
                    close = matching(toks, j)
                    if is_cfg_test(toks[j + 1 : close]):
                        if inner and depth == 0:
                            return  # the whole module is test-only
                        test_next = True
                    i = close + 1
                    continue
            if test_next:
                i = self.skip_item(toks, i, end)
                test_next = False
                continue
            if kind == "punct" and v == "{":
                depth += 1
            elif kind == "punct" and v == "}":
                depth -= 1
            elif kind == "ident" and v == "mod" and i + 2 < end and toks[i + 1][0] == "ident":
                name, nxt = toks[i + 1][1], toks[i + 2][1]
                if nxt == ";":
                    f = self.child_file(base, name)
                    if f is not None:
                        mod.children[name] = self.load(mod, name, f, f.name == "mod.rs")
                    i += 3
                    continue
                if nxt == "{":
                    close = matching(toks, i + 2)
                    child = Module(name, mod.file, mod)
                    self.modules.append(child)
                    mod.children[name] = child
                    self.parse(child, toks, i + 3, close, base / name)
                    i = close + 1
                    continue
            elif kind == "ident" and v == "use":
                semi = i + 1
                while semi < end and toks[semi][1] != ";":
                    semi += 1
                trees = []
                parse_use_tree(toks, i + 1, semi, [], trees)
                text = " ".join(t[1] for t in toks[i:semi])
                for pat, rep in ((r"\s*::\s*", "::"), (r"\s+,", ","), (r"\{\s+", "{"), (r"\s+\}", "}"), (r"\$ ", "$")):
                    text = re.sub(pat, rep, text)
                for segs, alias, glob in trees:
                    if not segs or segs[0] == "::":
                        continue
                    mod.refs.append((segs, mod, line, text))
                    if depth == 0:
                        if glob:
                            mod.globs.append((segs, mod))
                        else:
                            mod.imports[alias or segs[-1]] = (segs, mod)
                i = semi + 1
                continue
            elif kind == "ident" and depth == 0 and v in ITEM_KEYWORDS and i + 1 < end:
                if toks[i + 1][0] == "ident":
                    mod.defined.add(toks[i + 1][1])
            elif kind == "ident" and v == "macro_rules" and i + 2 < end and toks[i + 1][1] == "!":
                mod.defined.add(toks[i + 2][1])
            elif kind == "ident" or (kind == "punct" and v == "$"):
                prev = toks[i - 1][1] if i > 0 else ""
                if prev not in ("::", ".") and i + 1 < end:
                    i = self.path_ref(mod, toks, i, end)
                    continue
            i += 1

    def path_ref(self, mod, toks, i, end):
        """Records the path starting at toks[i] (if it has `::`); returns the next index."""
        start = i
        segs = []
        if toks[i][1] == "$":
            if i + 1 < end and toks[i + 1][1] == "crate":
                segs.append("$crate")
                i += 2
            else:
                return i + 1
        else:
            segs.append(toks[i][1])
            i += 1
        while i + 1 < end and toks[i][1] == "::" and toks[i + 1][0] == "ident":
            segs.append(toks[i + 1][1])
            i += 2
        if len(segs) > 1:
            text = "::".join(segs)
            mod.refs.append((segs, mod, toks[start][2], text))
        return i

    def skip_item(self, toks, i, end):
        """Index after the item starting at toks[i] (ends at `;` or a closing brace)."""
        while i < end:
            v = toks[i][1]
            if toks[i][0] == "punct" and v in "([":
                i = matching(toks, i) + 1
            elif toks[i][0] == "punct" and v == "{":
                i = matching(toks, i) + 1
                if i < end and toks[i][1] == ";":
                    i += 1
                return i
            elif toks[i][0] == "punct" and v == ";":
                return i + 1
            else:
                i += 1
        return i

    # ------------------------------------------------------------------------ resolution

    def start(self, segs, ctx, seen):
        """The module a path starts in and the index of its next segment, or (None, 0)."""
        first = segs[0]
        if first in ("crate", "$crate"):
            return self.root, 1
        if first in ("self", "super"):
            mod, i = ctx, 0
            while i < len(segs) and segs[i] in ("self", "super"):
                if segs[i] == "super":
                    mod = mod.parent
                    if mod is None:
                        return None, 0
                i += 1
            return mod, i
        if first in ctx.children:
            return ctx.children[first], 1
        if first in ctx.imports and (id(ctx), first) not in seen:
            isegs, ictx = ctx.imports[first]
            if isegs != segs:
                seen = seen | {(id(ctx), first)}
                mod, rest = self.walk(list(isegs) + list(segs[1:]), ictx, seen)
                return mod, len(segs) - len(rest) if mod is not None else 0
        return None, 0

    def walk(self, segs, ctx, seen):
        """Follows the module part of a path: (module, remaining segments) or (None, [])."""
        mod, i = self.start(segs, ctx, seen)
        if mod is None:
            return None, []
        while i < len(segs) and segs[i] in mod.children:
            mod = mod.children[segs[i]]
            i += 1
        return mod, segs[i:]

    def find(self, mod, name, seen):
        """The file defining `name` as seen from module `mod`: a Path, "extern" or None."""
        key = (id(mod), name)
        if key in seen:
            return None
        seen = seen | {key}
        if name in mod.defined or name in mod.children:
            return mod.file
        if name in mod.imports:
            isegs, ictx = mod.imports[name]
            return self.resolve(isegs, ictx, seen) or "extern"
        for gsegs, gctx in mod.globs:
            target, rest = self.walk(gsegs, gctx, seen)
            if target is not None and not rest:
                found = self.find(target, name, seen)
                if found is not None:
                    return found
        return None

    def resolve(self, segs, ctx, seen=frozenset()):
        """The file a path refers to, or None when it leaves the crate."""
        mod, rest = self.walk(segs, ctx, seen)
        if mod is None:
            return None
        if not rest:
            return mod.file
        found = self.find(mod, rest[0], seen)
        if found == "extern":
            return None
        return found or mod.file

    def edges(self):
        out = {}
        for mod in self.modules:
            for segs, ctx, line, text in mod.refs:
                target = self.resolve(segs, ctx)
                if target is not None and target != mod.file:
                    out.setdefault((mod.file, target), []).append((line, text))
        return out


# ---------------------------------------------------------------------------- cycles


def sccs(nodes, adj):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in adj.get(v, ()):
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
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def cycles(comp, adj, cap):
    """Elementary cycles inside one component, each starting at its smallest node; at most cap+1."""
    order = {v: k for k, v in enumerate(comp)}
    found = []
    for s in comp:
        path = [s]

        def dfs(v):
            for w in sorted((w for w in adj.get(v, ()) if w in order), key=order.get):
                if order[w] < order[s]:
                    continue
                if w == s:
                    found.append(path + [s])
                    if len(found) > cap:
                        return True
                elif w not in path:
                    path.append(w)
                    if dfs(w):
                        return True
                    path.pop()
            return False

        if dfs(s):
            break
    found.sort(key=lambda c: (len(c), c))
    return found


def check_crate(crate_dir):
    src = crate_dir / "src"
    roots = [p for p in (src / "lib.rs", src / "main.rs") if p.exists()]
    roots += sorted((src / "bin").glob("*.rs")) if (src / "bin").is_dir() else []
    total = 0
    capped = False
    lines = []
    for root in roots:
        crate = Crate(root, src)
        edges = crate.edges()
        adj = {}
        for a, b in edges:
            adj.setdefault(a, set()).add(b)
        nodes = {m.file for m in crate.modules}
        name = lambda p: str(p.relative_to(src))
        for comp in sccs(nodes, adj):
            found = cycles(comp, adj, COUNT_CAP)
            total += len(found)
            capped = capped or len(found) > COUNT_CAP
            for c in found[:CAP]:
                lines.append("  " + " -> ".join(name(p) for p in c))
            if len(found) > CAP:
                more = f"{len(found) - CAP}{'+' if len(found) > COUNT_CAP else ''}"
                lines.append(f"  ... {more} more circles among {', '.join(name(p) for p in comp)}")
            lines.append("  edges in these circles (first reference of each):")
            members = set(comp)
            for (a, b), refs in sorted(edges.items(), key=lambda e: (name(e[0][0]), name(e[0][1]))):
                if a in members and b in members:
                    line, text = refs[0]
                    more = f" (+{len(refs) - 1} more)" if len(refs) > 1 else ""
                    lines.append(f"    {name(a)} -> {name(b)}: {name(a)}:{line} `{text}`{more}")
    label = crate_dir.name
    if total:
        print(f"{label}: {total}{'+' if capped else ''} circle(s)")
        print("\n".join(lines))
    else:
        print(f"{label}: no circles")
    return total


def main(argv):
    if argv:
        dirs = [Path(a) for a in argv]
    else:
        dirs = sorted(p for p in (Path(__file__).resolve().parent.parent / "crates").iterdir() if (p / "src").is_dir())
    total = sum(check_crate(d) for d in dirs)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
