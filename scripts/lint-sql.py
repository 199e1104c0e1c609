#!/usr/bin/env python3
"""Lint pg_migrate's own SQL for names that resolve through the caller's search_path.

pg_migrate runs many queries on its own behalf inside the caller's session: under the
caller's search_path, often as a superuser. Since PostgreSQL 15 a database owner owns
schema public, so an unqualified function, operator, type or catalog relation in such a
query can be taken over by an object planted in public (a better-matching
public.*(bigint, interval), or anything at all when the caller's path puts public before
pg_catalog). This lint scans the SQL in the string literals of src/**/*.rs and in
src/**/*.sql and fails on:

  - a call of an unqualified function               left(x, 3)     -> pg_catalog.left(x, 3)
  - an unqualified operator                          a = b          -> a OPERATOR(pg_catalog.=) b
  - constructs that look up an operator by name      IN (..), LIKE, BETWEEN, NULLIF, IS [NOT]
                                                     DISTINCT FROM, simple CASE, JOIN .. USING
  - a cast or typed literal to a non-keyword type    x::text, timestamptz '..' -> pg_catalog.text
  - an unqualified catalog relation                  FROM pg_locks  -> pg_catalog.pg_locks

Grammar constructs that PostgreSQL always resolves in pg_catalog (EXTRACT, TRIM, COALESCE,
GREATEST, CAST to keyword types such as bigint or interval, current_user ...) pass.
Assignments (UPDATE .. SET a = b, PL/pgSQL :=, SET name = value, named arguments =>) pass.

Exemptions, for SQL that is the user's own or resolved at CREATE EXTENSION time:
  .rs:  a comment `sql-lint: allow(<reason>)` on the line of the literal or the line above
  .sql: `-- sql-lint: allow(<reason>)` at the end of a line exempts that line; a line
        `-- sql-lint: off (<reason>)` up to `-- sql-lint: on` exempts a block.
Test modules (#[cfg(test)] / pg_test) are not scanned.

Upgrade scripts (sql/pg_migrate--A--B.sql) are scanned like src/**/*.sql.

Usage: scripts/lint-sql.py [--fix] [ROOT]   (exit status 1 when something is found)
"""
import os
import re
import sys

# Words followed by "(" that are grammar, not a function looked up through search_path
# (or a function the grammar itself qualifies with pg_catalog).
GRAMMAR_PARENS = {
    "any", "all", "some", "exists", "values", "cast", "coalesce", "greatest", "least",
    "extract", "row", "array", "filter", "over", "within", "lateral", "not", "and", "or",
    "select", "where", "when", "then", "else", "returns", "return", "check", "key",
    "unique", "default", "on", "primary", "references", "foreign", "partition", "window",
    "conflict", "as", "from", "join", "by", "table", "into", "exclude", "include", "with",
    "btree", "hash", "gin", "gist", "brin", "identity", "stored", "is", "case", "if",
    "elsif", "while", "loop", "perform", "raise", "execute", "format_type_placeholder",
    "trim", "numeric", "decimal", "varchar", "char", "character", "timestamp", "time",
    "interval", "bit", "float", "dec", "nchar", "grouping", "collate", "distinct",
    "union", "intersect", "except", "set", "returning", "limit", "offset", "in_list",
    "for", "materialized", "recursive", "do", "using", "ordinality", "tablesample",
    "only", "setof", "language", "procedure", "function", "inout", "out", "variadic",
    "for_placeholder", "strict", "immutable", "stable", "volatile", "begin", "declare",
    "call", "foreach", "slice", "exit", "continue", "get", "diagnostics", "null",
    "current_date", "current_timestamp", "current_time", "localtime", "localtimestamp",
}
# Words before "(" that make what follows an alias's column list or a definition.
DEFINING_WORDS = {"as", "table", "function", "procedure", "view", "index", "type",
                  "trigger", "into", "references", "returns", "exists", "cursor"}
# Type names that are SQL keywords: the grammar maps them to pg_catalog types.
KEYWORD_TYPES = {"bigint", "int", "integer", "smallint", "boolean", "interval", "timestamp",
                 "time", "numeric", "decimal", "real", "float", "double", "char", "character",
                 "varchar", "bit", "national", "nchar", "dec", "setof"}
# Non-keyword type names that show up in typed literals ("text 'x'").
TYPED_LITERAL_TYPES = {"text", "int8", "int4", "int2", "oid", "regclass", "regtype",
                       "regproc", "regprocedure", "name", "timestamptz", "jsonb", "json",
                       "xid8", "bool", "float8", "float4", "date", "timetz", "uuid", "bytea"}
SQL_START = re.compile(
    r"^(\s*--[^\n]*\n)*\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP|SET|DO|CALL|COMMENT|GRANT|"
    r"REVOKE|LOCK|EXPLAIN|VALUES|TABLE|ANALYZE|PERFORM)\b")
# --fix rewrites these; arithmetic needs parentheses by hand (OPERATOR() has one precedence).
COMPARISONS = {"=", "<>", "!=", "<", ">", "<=", ">=", "~", "!~"}
CAST_FIX = {"int8": "bigint", "int4": "integer", "int2": "smallint", "float8": "double precision",
            "float4": "real", "bool": "boolean"}
OP_CHARS = set("+-*/<>=~!@#%^&|`?")
ALLOW = re.compile(r"sql-lint:\s*allow\(")


class Token:
    __slots__ = ("kind", "text", "line", "pos")

    def __init__(self, kind, text, line, pos=0):
        self.kind, self.text, self.line, self.pos = kind, text, line, pos

    @property
    def low(self):
        return self.text.lower()


def tokenize(sql):
    """SQL tokens; dollar-quoted bodies are tokenized too (PL/pgSQL is SQL for us)."""
    tokens, i, line, n = [], 0, 1, len(sql)
    class _Tokens(list):
        def append(self, t):
            t.pos = start
            super().append(t)
    tokens = _Tokens()
    while i < n:
        start = i
        c = sql[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
            line += sql.count("\n", i, j)
            i = j
        elif c == "'" or (c in "eE" and sql.startswith("'", i + 1)):
            j = i + (2 if c != "'" else 1)
            while j < n:
                if sql[j] == "\\" and c in "eE":
                    j += 2
                    continue
                if sql[j] == "'":
                    if sql.startswith("''", j):
                        j += 2
                        continue
                    break
                j += 1
            tokens.append(Token("str", sql[i:j + 1], line))
            line += sql.count("\n", i, j)
            i = j + 1
        elif c == '"':
            j = sql.find('"', i + 1)
            j = n if j < 0 else j
            tokens.append(Token("qident", sql[i:j + 1], line))
            i = j + 1
        elif c == "$":
            m = re.match(r"\$(\d+)", sql[i:])
            if m:
                tokens.append(Token("param", m.group(0), line))
                i += len(m.group(0))
                continue
            m = re.match(r"\$[A-Za-z_]*\$", sql[i:])
            if m:  # a dollar quote: its body is scanned as SQL
                i += len(m.group(0))
                continue
            tokens.append(Token("other", c, line))
            i += 1
        elif c == "{":  # a Rust format placeholder stands for a quoted name or a literal
            j = sql.find("}", i)
            j = n if j < 0 else j
            tokens.append(Token("placeholder", sql[i:j + 1], line))
            i = j + 1
        elif c.isalpha() or c == "_":
            m = re.match(r"[A-Za-z_][A-Za-z0-9_$]*", sql[i:])
            tokens.append(Token("ident", m.group(0), line))
            i += len(m.group(0))
        elif c.isdigit():
            m = re.match(r"\d+(\.\d*)?([eE][+-]?\d+)?", sql[i:])
            tokens.append(Token("num", m.group(0), line))
            i += len(m.group(0))
        elif sql.startswith("::", i):
            tokens.append(Token("cast", "::", line))
            i += 2
        elif sql.startswith(":=", i):
            tokens.append(Token("assign", ":=", line))
            i += 2
        elif c in OP_CHARS:
            j = i
            while j < n and sql[j] in OP_CHARS and not sql.startswith("--", j) \
                    and not sql.startswith("/*", j):
                j += 1
            tokens.append(Token("op", sql[i:j], line))
            i = j
        else:
            tokens.append(Token("other", c, line))
            i += 1
    return tokens


def lint_sql(sql):
    """(line within sql, message) for every search_path-dependent name."""
    toks = tokenize(sql)
    problems = []
    # Paren depth at which an assignment list (UPDATE .. SET, DO UPDATE SET, SET x =) runs.
    set_depth = None
    depth = 0
    in_declare = False
    raise_seen = False

    def tok(k):
        return toks[k] if 0 <= k < len(toks) else Token("none", "", 0)

    for k, t in enumerate(toks):
        prev, nxt = tok(k - 1), tok(k + 1)
        if t.kind == "other" and t.text == "(":
            depth += 1
        elif t.kind == "other" and t.text == ")":
            depth -= 1
            if set_depth is not None and depth < set_depth:
                set_depth = None
        if t.kind == "ident":
            low = t.low
            if low in ("set", "diagnostics") or (low == "using" and raise_seen):
                set_depth = depth  # SET a = b, GET DIAGNOSTICS x = ITEM, RAISE .. USING k = v
            if low == "raise":
                raise_seen = True
            elif low in ("where", "from", "returning", "language", "as") \
                    and set_depth is not None and depth == set_depth:
                set_depth = None
            if low == "declare":
                in_declare = True
            elif low == "begin":
                in_declare = False
        if t.kind == "other" and t.text == ";":
            set_depth = None
            raise_seen = False
            if in_declare:
                # "name type;" in a PL/pgSQL DECLARE: the type is looked up when the
                # function is first run, under the caller's path.
                a, b = tok(k - 1), tok(k - 2)
                if a.kind == "ident" and b.kind in ("ident", "qident") and tok(k - 3).text != "." \
                        and a.low not in KEYWORD_TYPES and a.low not in ("constant",):
                    if tok(k - 2).text != ".":
                        problems.append((a.line, f"PL/pgSQL variable of type {a.text}: "
                                                 f"write pg_catalog.{a.text}",
                                         (a.pos, 0, "pg_catalog.")))
        qualified = prev.text == "."
        if t.kind == "ident" and nxt.text == "(" and not qualified:
            low = t.low
            if low == "operator":
                pass  # OPERATOR(schema.op): checked by the operator rule
            elif low == "in":
                if prev.low not in ("for", "foreach", "tag") and tok(k - 2).low not in ("for", "foreach"):
                    problems.append((t.line, "IN (...) looks up = through search_path: "
                                             "write OPERATOR(pg_catalog.=) ANY (...)", None))
            elif low == "nullif":
                problems.append((t.line, "NULLIF looks up = through search_path: "
                                         "write CASE WHEN a OPERATOR(pg_catalog.=) b ...", None))
            elif low == "using" and prev.low not in ("btree", "hash", "gin", "gist", "brin"):
                problems.append((t.line, "JOIN .. USING (...) looks up = through search_path: "
                                         "write ON with OPERATOR(pg_catalog.=)", None))
            elif low in GRAMMAR_PARENS:
                pass
            elif prev.low in DEFINING_WORDS or prev.text == ")" or prev.kind in ("qident",):
                pass  # alias column list or a definition
            elif prev.kind == "ident" and prev.low not in (
                    "select", "where", "and", "or", "not", "then", "else", "when", "return",
                    "perform", "by", "in", "is", "distinct", "case", "returning", "values",
                    "set", "if", "elsif", "while", "exit", "default", "raise", "using",
                    "from", "join", "lateral", "any", "all", "some", "like", "between",
                    "to", "filter", "do", "execute", "null"):
                pass  # "tablename (", a column definition "name type(...)" etc.
            else:
                problems.append((t.line, f"unqualified function {t.text}(): "
                                         f"write pg_catalog.{t.text}()", (t.pos, 0, "pg_catalog.")))
        if t.kind == "ident" and not qualified:
            low = t.low
            if low in ("like", "ilike", "similar", "between"):
                problems.append((t.line, f"{t.text.upper()} looks up an operator through "
                                         "search_path: use OPERATOR(pg_catalog....)", None))
            elif low == "distinct" and prev.low in ("is", "not") and nxt.low == "from":
                problems.append((t.line, "IS DISTINCT FROM looks up = through search_path", None))
            elif low == "natural":
                problems.append((t.line, "NATURAL JOIN looks up = through search_path", None))
            elif low == "case" and nxt.low != "when" and nxt.kind != "none" and nxt.text != ";":
                if not (nxt.low in ("end",)):
                    problems.append((t.line, "simple CASE x WHEN looks up = through "
                                             "search_path: write CASE WHEN x OPERATOR(...)", None))
            elif low.startswith("pg_") and t.text == low and low not in ("pg_catalog", "pg_temp", "pg_toast") \
                    and nxt.text not in ("(", ".") and prev.kind != "str":
                problems.append((t.line, f"unqualified catalog relation {t.text}: "
                                         f"write pg_catalog.{t.text}", (t.pos, 0, "pg_catalog.")))
            elif low in TYPED_LITERAL_TYPES and nxt.kind == "str" and prev.text != "::":
                problems.append((t.line, f"typed literal of type {t.text}: "
                                         f"write pg_catalog.{t.text} '...'", (t.pos, 0, "pg_catalog.")))
        if t.kind == "cast":
            if nxt.kind == "ident" and tok(k + 2).text != "." and nxt.low not in KEYWORD_TYPES:
                problems.append((t.line, f"cast to {nxt.text}: write ::pg_catalog.{nxt.text}",
                                 (nxt.pos, len(nxt.text), CAST_FIX.get(nxt.low, "pg_catalog." + nxt.text))))
        if t.kind == "ident" and t.low == "as" and not qualified:
            # CAST(x AS type)
            open_ = None
            d = 0
            for j in range(k - 1, -1, -1):
                if toks[j].text == ")":
                    d += 1
                elif toks[j].text == "(":
                    if d == 0:
                        open_ = j
                        break
                    d -= 1
            if open_ is not None and tok(open_ - 1).low == "cast" and nxt.kind == "ident" \
                    and tok(k + 2).text != "." and nxt.low not in KEYWORD_TYPES:
                problems.append((t.line, f"CAST(.. AS {nxt.text}): write pg_catalog.{nxt.text}", None))
        if t.kind == "op":
            op = t.text
            if prev.low == "operator" or (prev.text == "." and tok(k - 2).low == "pg_catalog"
                                          and tok(k - 3).text == "(" and
                                          tok(k - 4).low == "operator"):
                continue  # inside OPERATOR(pg_catalog.op)
            if op == "=>":
                continue  # a named argument
            if op == "*" and (prev.text in ("(", ",", ".") or prev.low in ("select", "returning")
                              or prev.kind == "none"):
                continue  # SELECT *, count(*), t.*
            before = tok(k - 2)
            if op == "=" and set_depth is not None and depth == set_depth and (
                    (prev.kind in ("ident", "qident", "placeholder")
                     and (before.low in ("set", "diagnostics", "using", "local", "session")
                          or before.text == ","
                          or (before.text == "." and tok(k - 4).low in ("set", ",", "local", "session"))))
                    or prev.text == ")"):
                continue  # an assignment: SET a = .., SET x.y = .., GET DIAGNOSTICS v = ..
            if op == "-" and nxt.kind == "num" and (prev.kind in ("op", "none", "assign", "cast")
                                                    or prev.text in ("(", ",", "[")
                                                    or prev.low in ("select", "then", "else",
                                                                    "return", "when")):
                continue  # a negative literal: the minus is folded into the constant
            fix = (t.pos, len(op), f"OPERATOR(pg_catalog.{op})") if op in COMPARISONS else None
            problems.append((t.line, f"unqualified operator {op}: write OPERATOR(pg_catalog.{op})", fix))
    return problems


def rust_literals(text):
    """(start line, literal text, exempt) of the string literals outside test modules."""
    out, i, n, line = [], 0, len(text), 1
    lines = text.split("\n")

    def exempt(at_line):
        here = lines[at_line - 1] if at_line - 1 < len(lines) else ""
        above = lines[at_line - 2] if at_line >= 2 else ""
        return bool(ALLOW.search(here) or ALLOW.search(above))

    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i)
            j = n if j < 0 else j + 2
            line += text.count("\n", i, j)
            i = j
        elif text.startswith("#[cfg(test)]", i) or text.startswith("#[cfg(any(test", i):
            break  # test modules sit at the end of a file
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            start = i + 2 + len(hashes)
            end = text.find('"' + hashes, start)
            end = n if end < 0 else end
            out.append((line, text[start:end], exempt(line), start))
            line += text.count("\n", i, end)
            i = end + 1 + len(hashes)
        elif c == "b" and text.startswith('b"', i):
            i += 1
        elif c == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\":
                    nx = text[j + 1] if j + 1 < n else ""
                    if nx == "\n":  # line continuation: skip the following whitespace
                        j += 2
                        while j < n and text[j] in " \t\n":
                            j += 1
                        buf.append(" ")
                        continue
                    buf.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(nx, nx))
                    j += 2
                    continue
                buf.append(text[j])
                j += 1
            out.append((line, "".join(buf), exempt(line), None if "\\" in text[i + 1:j] else i + 1))
            line += text.count("\n", i, j)
            i = j + 1
        elif c == "'":
            # a char literal ('x', '\n') or a lifetime ('a)
            m = re.match(r"'(\\.|[^\\'])'", text[i:])
            i += len(m.group(0)) if m else 1
        else:
            i += 1
    return out


def sql_file_text(text):
    """The file with exempted lines and blocks blanked (line numbers kept)."""
    out, off = [], False
    for raw in text.split("\n"):
        if re.search(r"--\s*sql-lint:\s*off", raw):
            off = True
        if re.search(r"--\s*sql-lint:\s*on\b", raw):
            off = False
            out.append("")
            continue
        out.append("" if off or ALLOW.search(raw) else raw)
    return "\n".join(out)


# (SQL, how many findings): the lint's own check, run first by main().
SELF_TEST = [
    ("SELECT started_us * interval '1 microsecond' FROM s", 1),
    ("SELECT format('%s', x), left(q, 200), now() FROM t", 3),
    ("SELECT * FROM unnest($1::text[]) AS s(a)", 2),
    ("SELECT count(*) FROM pg_locks WHERE pid <> pg_backend_pid()", 4),
    ("SELECT a FROM t WHERE a IN ('x', 'y') AND b LIKE 'z%' AND c IS DISTINCT FROM d", 3),
    ("SELECT NULLIF(a, 0), CASE a WHEN 1 THEN 2 END, timestamptz '2000-01-01', CAST(a AS int8)", 4),
    ("UPDATE t SET a = CASE WHEN b = 1 THEN 2 END, c = c + 1 WHERE d = 2", 3),
    ("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ DECLARE v text; BEGIN "
     "IF v = 'x' THEN PERFORM 1; END IF; END $$", 2),
    # Clean: qualified, assignments, grammar that resolves in pg_catalog.
    ("SELECT pg_catalog.format('%s', x), a OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[]), "
     "coalesce(a, b), greatest(a, 1), extract(epoch FROM x), count_me.x, -1, t.*, $1::bigint, "
     "interval '1 ms' FROM pg_catalog.pg_locks", 0),
    ("UPDATE migrate.t SET a = $1, b.c = 2 WHERE x OPERATOR(pg_catalog.=) 1", 0),
    ("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog AS $$ "
     "DECLARE m pg_catalog.text; BEGIN GET STACKED DIAGNOSTICS m = MESSAGE_TEXT; "
     "RAISE EXCEPTION USING ERRCODE = 'x', MESSAGE = m; m := 'y'; END $$", 0),
]


def self_test():
    failed = 0
    for sql, expected in SELF_TEST:
        got = lint_sql(sql)
        if len(got) != expected:
            print(f"lint-sql self-test: {expected} expected, {len(got)} found in: {sql}\n  {got}")
            failed += 1
    return failed


def main():
    if self_test():
        return 2
    args = [a for a in sys.argv[1:] if a != "--fix"]
    fix = "--fix" in sys.argv[1:]
    root = args[0] if args else os.path.join(os.path.dirname(__file__), "..")
    src = os.path.join(root, "src")
    found = 0
    paths = [os.path.join(d, f) for d, _, files in sorted(os.walk(src)) for f in sorted(files)]
    # Upgrade scripts repeat the objects' SQL (install scripts of released versions are frozen).
    sql_dir = os.path.join(root, "sql")
    if os.path.isdir(sql_dir):
        paths += [os.path.join(sql_dir, f) for f in sorted(os.listdir(sql_dir)) if f.count("--") == 2]
    for path in paths:
            name = os.path.basename(path)
            rel = os.path.relpath(path, root)
            if name == "tests.rs":
                continue
            with open(path, encoding="utf-8") as f:
                text = f.read()
            edits = []
            if name.endswith(".rs"):
                for line, lit, exempt, offset in rust_literals(text):
                    if exempt or not SQL_START.match(lit):
                        continue
                    for l, msg, edit in lint_sql(lit):
                        if fix and edit and offset is not None:
                            edits.append((offset + edit[0], edit[1], edit[2]))
                            continue
                        print(f"{rel}:{line + l - 1}: {msg}")
                        found += 1
            elif name.endswith(".sql"):
                for l, msg, edit in lint_sql(sql_file_text(text)):
                    if fix and edit:
                        edits.append(edit)
                        continue
                    print(f"{rel}:{l}: {msg}")
                    found += 1
            if edits:
                for pos, length, new in sorted(set(edits), reverse=True):
                    text = text[:pos] + new + text[pos + length:]
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
                print(f"{rel}: {len(edits)} fix(es) applied")
    if found:
        print(f"lint-sql: {found} search_path-dependent name(s) in pg_migrate's own SQL "
              "(see scripts/lint-sql.py; --fix rewrites the simple ones)", file=sys.stderr)
        return 1
    print("lint-sql: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
