"""Citus readiness, proven without Citus (docs/scaling.md, "PostgreSQL past one machine").

Citus distributes a table by one column and sends a statement to a single shard when it
pins that column to one value. pryvrt's data is per user, so the plan is to distribute
every table by ``user_id``. This module parses with PostgreSQL's own parser (pglast, i.e.
libpg_query) every statement of schema.sql and every statement that pryvrt/storage/ sends,
and checks:

- schema: each distributed table (every table with a ``user_id`` column) has a primary key,
  unique constraints and indexes leading with ``user_id``, and foreign keys between them
  that include it (colocated); the few other tables are listed with the reason they are a
  reference or local table;
- statements: every table a query or write touches is pinned to one ``user_id`` parameter
  (``user_id = $n``, or a join on ``user_id`` to a pinned table), and every INSERT gives
  ``user_id`` from a parameter. The exceptions are listed below, each with its reason.

Statements are found where they are sent (``execute``/``fetch*`` calls) and rendered by
reading the code: literals, f-strings, concatenations, conditional parts (each branch is a
variant), module constants, and local names assigned once. The events query builder
(``select_events``) is called for every combination of its filters. A call whose SQL
cannot be rendered fails the test: new storage code is checked as soon as it is written.
"""

from __future__ import annotations

import ast
import functools
import importlib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pglast = pytest.importorskip("pglast", reason="pglast (PostgreSQL's parser) is not installed")
from pglast import ast as pg  # noqa: E402
from pglast import enums  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schema.sql"
STORAGE = ROOT / "pryvrt" / "storage"
QUERY_METHODS = {"execute", "executemany", "fetch", "fetchrow", "fetchval"}

# Tables that are not distributed by user_id, and why (docs/scaling.md says the same).
REFERENCE_TABLES = {
    "users": "usernames and e-mails are unique across users and looked up before the"
    " user_id is known (login, /{username}/ routing): a reference table, copied to every"
    " node (100 000 users: a few MB); it changes only at registration and profile edits",
}
LOCAL_TABLES = {
    "schema_version": "one row, read and written only while the schema is applied",
    "events_in": "a temporary table (ON COMMIT DROP) of the transaction that bulk-inserts"
    " one user's events; its INSERT ... SELECT gives user_id from a parameter",
    "access_requests": "app access requests (README, 'Connecting an app'): no user when an"
    " app opens one, only its random key, which every statement names; a few rows living"
    " 10 minutes: kept on the coordinator (or distributed by key), never joined to user data",
}
# Non-btree indexes of distributed tables that do not lead with user_id, and why.
OTHER_INDEXES = {
    "events_tags": "GIN on tags: a GIN index cannot lead with a text column without the"
    " btree_gin extension; each shard has its own, and every query that tests tags also"
    " pins user_id and channel_id (select_events keeps this index out of its plans)",
}
# Btree indexes of distributed tables that do not lead with user_id, and why.
CROSS_USER_INDEXES = {
    "shares_token": "in-app shares are rows of their recipient (user_id); deleting a token"
    " withdraws its shares, found by the sharer's id and the token: under Citus a"
    " multi-shard lookup, rare (token deletion) and off the read path",
}
# Storage functions allowed to touch several users at once, and why.
MULTI_USER = {
    "shares.get": "a share is read joined with its token (a row of the sharer) so that it never"
    " outlives it: a join of two users' shards. Under Citus: withdraw on delete only (it"
    " already does) and drop the join (docs/scaling.md, 'What would change')",
    "shares.list_all": "as shares.get, for the recipient's list",
    "shares.withdraw": "deleting a token withdraws the shares that delivered it to other"
    " users (rows of each recipient): a multi-shard DELETE by (from_user_id, token_id)",
    "events._insert_many_live": "group commit: concurrent single-event writes of any users"
    " share one statement and one commit. Under Citus that statement would span shards;"
    " the plan is to group per user_id (docs/scaling.md, 'What would change')",
    "sessions.purge_expired": "a periodic sweep of expired sessions of every user: a"
    " multi-shard DELETE, run in parallel on every shard by Citus, off the request path",
}


@dataclass(frozen=True)
class Statement:
    where: str  # module.function
    sql: str


# -- schema ---------------------------------------------------------------------------------


def schema_statements() -> list[Any]:
    return [raw.stmt for raw in pglast.parse_sql(SCHEMA.read_text())]


def column_name(node: Any) -> str | None:
    if isinstance(node, pg.ColumnRef) and isinstance(node.fields[-1], pg.String):
        return str(node.fields[-1].sval)
    if isinstance(node, pg.IndexElem):
        return node.name
    if isinstance(node, pg.String):
        return str(node.sval)
    return None


def schema_tables() -> dict[str, set[str]]:
    """Table → its columns (from CREATE TABLE and ALTER TABLE ... ADD COLUMN)."""
    tables: dict[str, set[str]] = {}
    for stmt in schema_statements():
        if isinstance(stmt, pg.CreateStmt):
            tables[stmt.relation.relname] = {
                e.colname for e in stmt.tableElts or () if isinstance(e, pg.ColumnDef)
            }
        elif isinstance(stmt, pg.AlterTableStmt):
            for cmd in stmt.cmds or ():
                if isinstance(cmd.def_, pg.ColumnDef):
                    tables[stmt.relation.relname].add(cmd.def_.colname)
    return tables


def distributed_tables() -> set[str]:
    return {t for t, cols in schema_tables().items() if "user_id" in cols} - set(REFERENCE_TABLES)


def test_every_table_is_distributed_by_user_id_or_listed_with_its_reason() -> None:
    tables = schema_tables()
    unlisted = {t for t, cols in tables.items() if "user_id" not in cols} - set(LOCAL_TABLES)
    assert unlisted == set(), f"tables without user_id: {unlisted}"
    assert set(REFERENCE_TABLES) <= set(tables)
    assert "events" in distributed_tables() and "tokens" in distributed_tables()


def test_keys_unique_constraints_and_indexes_of_distributed_tables_lead_with_user_id() -> None:
    distributed = distributed_tables()
    problems: list[str] = []
    for stmt in schema_statements():
        if isinstance(stmt, pg.CreateStmt) and stmt.relation.relname in distributed:
            table = stmt.relation.relname
            constraints = [  # (constraint, its columns): column constraints name their column
                *((e, None) for e in stmt.tableElts or () if isinstance(e, pg.Constraint)),
                *(
                    (c, e.colname)
                    for e in stmt.tableElts or ()
                    if isinstance(e, pg.ColumnDef)
                    for c in e.constraints or ()
                ),
            ]
            kinds = {c.contype for c, _ in constraints}
            if enums.ConstrType.CONSTR_PRIMARY not in kinds:
                problems.append(f"{table}: no primary key")
            for c, column in constraints:
                name = c.contype.name
                if c.contype in (enums.ConstrType.CONSTR_PRIMARY, enums.ConstrType.CONSTR_UNIQUE):
                    keys = [column] if column else [column_name(k) for k in c.keys or ()]
                    if keys[:1] != ["user_id"]:
                        problems.append(f"{table}: {name} {keys} does not lead with user_id")
                elif c.contype == enums.ConstrType.CONSTR_FOREIGN:
                    target = c.pktable.relname
                    cols = [column] if column else [column_name(k) for k in c.fk_attrs or ()]
                    if target in distributed and cols[:1] != ["user_id"]:
                        problems.append(f"{table}: foreign key {cols} to {target} not colocated")
        elif isinstance(stmt, pg.IndexStmt) and stmt.relation.relname in distributed:
            keys = [column_name(p) for p in stmt.indexParams]
            if keys[:1] == ["user_id"] or stmt.idxname in CROSS_USER_INDEXES:
                continue
            if stmt.unique or stmt.accessMethod == "btree" or stmt.idxname not in OTHER_INDEXES:
                problems.append(f"{stmt.idxname} ON {stmt.relation.relname} {keys}")
    assert problems == []


# -- storage statements ---------------------------------------------------------------------

MAX_VARIANTS = 4096
STATUS_TAG = re.compile(r"^(INSERT|UPDATE|DELETE|SELECT) \d+")


class Unrendered(Exception):
    """A part of an SQL expression that reading the code cannot resolve."""


def event_queries() -> Iterator[Any]:
    from pryvrt.storage.events import EVERYTHING, STATE_FILTERS, EventQuery, Reach, Visible

    narrowed = Visible(
        (
            Reach(
                folder_ids=("f1",), no_folder=False, tag_sets=(("t",),), from_time=0.0, to_time=9.0
            ),
        )
    )
    for visible, folders, tags, state, since, running, window, limit, skip in itertools.product(
        (EVERYTHING, narrowed),
        (None, ("f1",)),
        (None, ("t",)),
        STATE_FILTERS,
        (None, 1.0),
        (False, True),
        (None, (0.0, 10.0)),
        (None, 20),
        (0, 5),
    ):
        yield EventQuery(
            folder_ids=folders,
            no_folder=folders is None,
            tags=tags,
            state=state,
            modified_since=since,
            running_only=running,
            from_time=window[0] if window else None,
            to_time=window[1] if window else None,
            limit=limit,
            skip=skip,
            visible=visible,
        )


def select_events_variants() -> list[str]:
    from pryvrt.storage.events import select_events

    return sorted({select_events("u", "c", q)[0] for q in event_queries()})


# Builders called rather than read: function name → its SQL variants.
def visible_sql_variants() -> list[str]:
    """The conditions ``visible_sql`` adds: none, a narrowed grant's, nothing visible."""
    from pryvrt.storage.events import EVERYTHING, Reach, Visible, visible_sql

    numbers = iter(range(10, 100))
    narrowed = Visible(
        (Reach(folder_ids=("f1",), no_folder=True, tag_sets=(("t",),), from_time=0.0, to_time=9.0),)
    )
    return [
        visible_sql(v, lambda _value: f"${next(numbers)}")
        for v in (EVERYTHING, narrowed, Visible(()))
    ]


BUILDERS = {"select_events": select_events_variants, "visible_sql": visible_sql_variants}


class Renderer:
    """The possible texts of an SQL expression in one function of one module."""

    def __init__(self, module: Any, function: ast.AST | None) -> None:
        self.globals = vars(module)
        self.assigned: dict[str, list[ast.AST]] = {}
        for node in ast.walk(function) if function is not None else ():
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.assigned.setdefault(target.id, []).append(node.value)
                    elif isinstance(target, ast.Tuple) and isinstance(target.elts[0], ast.Name):
                        # ``sql, *args = builder(...)``: the first item is the SQL
                        self.assigned.setdefault(target.elts[0].id, []).append(node.value)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                self.assigned.setdefault(node.target.id, []).append(node)

    def texts(self, node: ast.AST, formatted: bool = False) -> list[str]:
        """``formatted``: the value of an f-string field (a number is fine there)."""
        out = self._texts(node, formatted)
        if len(out) > MAX_VARIANTS:
            raise Unrendered(f"more than {MAX_VARIANTS} variants")
        return out

    def _texts(self, node: ast.AST, formatted: bool) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.JoinedStr):
            parts = [
                self.texts(v.value, formatted=True)
                if isinstance(v, ast.FormattedValue)
                else self.texts(v)
                for v in node.values
            ]
            return ["".join(p) for p in itertools.product(*parts)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return [a + b for a in self.texts(node.left) for b in self.texts(node.right)]
        if isinstance(node, ast.IfExp):
            return self.texts(node.body) + self.texts(node.orelse)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in BUILDERS:
                return BUILDERS[node.func.id]()
        if isinstance(node, ast.Name):
            sources = self.assigned.get(node.id)
            if sources:
                if len(sources) > 1 or isinstance(sources[0], ast.AugAssign):
                    raise Unrendered(f"{node.id} is assigned more than once")
                return self.texts(sources[0])
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            table = self.globals.get(node.value.id)
            if isinstance(table, dict) and all(isinstance(v, str) for v in table.values()):
                return list(table.values())
        try:  # module constants and expressions of them (", ".join(COLUMNS), ...)
            value = eval(compile(ast.Expression(node), "<sql>", "eval"), dict(self.globals))  # type: ignore[arg-type]
        except Exception as exc:
            raise Unrendered(ast.unparse(node)) from exc
        if isinstance(value, str) or (formatted and isinstance(value, int | float)):
            return [str(value)]
        raise Unrendered(ast.unparse(node))


def storage_statements() -> tuple[list[Statement], list[str]]:
    """Every SQL text the storage modules send, and the calls that could not be rendered."""
    statements: list[Statement] = []
    unrendered: list[str] = []
    for path in sorted(STORAGE.glob("*.py")):
        module = importlib.import_module(f"pryvrt.storage.{path.stem}")
        tree = ast.parse(path.read_text())
        functions = [
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        for function in functions:
            renderer = Renderer(module, function)
            for call in ast.walk(function):
                if not (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr in QUERY_METHODS
                    and call.args
                ):
                    continue
                where = f"{path.stem}.{function.name}"
                try:
                    texts = renderer.texts(call.args[0])
                except Unrendered as exc:
                    unrendered.append(f"{where} line {call.lineno}: {exc}")
                    continue
                statements.extend(Statement(where, " ".join(t.split())) for t in set(texts))
    return statements, unrendered


@pytest.fixture(scope="module")
def statements() -> list[Statement]:
    found, unrendered = storage_statements()
    assert unrendered == [], "SQL this test cannot read: render it or add a BUILDER"
    return found


def test_every_storage_statement_is_found_and_parses(statements: list[Statement]) -> None:
    where = {s.where for s in statements}
    # a sample of what must be there (the list grows with the code)
    for expected in (
        "events.query_json",
        "events._insert_many_live",
        "tokens.find_credential",
        "periods.first_overlaps",
        "attachments.write",
        "channels.get",
    ):
        assert expected in where
    failures = []
    for s in statements:
        try:
            parsed(s.sql)
        except pglast.parser.ParseError as exc:
            failures.append(f"{s.where}: {exc}: {s.sql[:200]}")
    assert failures == []
    assert len(statements) > 100  # select_events alone gives hundreds of variants


@dataclass
class Scope:
    """The relations of one query level: alias → table (None: not a table)."""

    relations: dict[str, str | None]
    pinned: set[str]


def conjuncts(expr: Any) -> Iterator[Any]:
    if isinstance(expr, pg.BoolExpr) and expr.boolop == enums.BoolExprType.AND_EXPR:
        for arg in expr.args:
            yield from conjuncts(arg)
    elif expr is not None:
        yield expr


def is_param(node: Any) -> bool:
    while isinstance(node, pg.TypeCast):
        node = node.arg
    return isinstance(node, pg.ParamRef)


def user_id_of(node: Any, scope: Scope, outer: dict[str, bool]) -> list[str] | None:
    """The aliases a ``[alias.]user_id`` column reference may name (None: not user_id)."""
    if not (isinstance(node, pg.ColumnRef) and column_name(node) == "user_id"):
        return None
    if len(node.fields) == 2:
        return [str(node.fields[0].sval)]
    return [a for a, t in scope.relations.items() if t is not None] or list(outer)


class Checker:
    def __init__(self, distributed: set[str]) -> None:
        self.distributed = distributed
        self.problems: list[str] = []
        self.ctes: set[str] = set()

    def statement(self, stmt: Any, outer: dict[str, bool]) -> None:
        with_clause = getattr(stmt, "withClause", None)
        for cte in with_clause.ctes if with_clause else ():
            self.ctes.add(cte.ctename)
            self.statement(cte.ctequery, outer)
        if isinstance(stmt, pg.SelectStmt):
            self.select(stmt, outer)
        elif isinstance(stmt, pg.InsertStmt):
            self.insert(stmt, outer)
        elif isinstance(stmt, pg.UpdateStmt | pg.DeleteStmt):
            scope = Scope({}, set())
            self.add_relation(stmt.relation, scope, outer)
            for item in getattr(stmt, "fromClause", None) or getattr(stmt, "usingClause", ()) or ():
                self.from_item(item, scope, outer, [])
            self.resolve(scope, [*conjuncts(stmt.whereClause)], outer)
            self.sublinks(stmt, scope, outer)

    def select(self, stmt: Any, outer: dict[str, bool]) -> None:
        if stmt.op != enums.SetOperation.SETOP_NONE:
            self.statement(stmt.larg, outer)
            self.statement(stmt.rarg, outer)
            return
        scope = Scope({}, set())
        quals: list[Any] = [*conjuncts(stmt.whereClause)]
        for item in stmt.fromClause or ():
            self.from_item(item, scope, outer, quals)
        self.resolve(scope, quals, outer)
        self.sublinks(stmt, scope, outer)

    def insert(self, stmt: Any, outer: dict[str, bool]) -> None:
        table = stmt.relation.relname
        if table not in self.distributed:
            return
        cols = [t.name for t in stmt.cols or ()]
        if "user_id" not in cols:
            self.problems.append(f"INSERT INTO {table} without user_id")
            return
        index = cols.index("user_id")
        select = stmt.selectStmt
        if select.valuesLists:
            for row in select.valuesLists:
                if not is_param(row[index]):
                    self.problems.append(f"INSERT INTO {table}: user_id is not a parameter")
        else:
            target = select.targetList[index].val
            scope = Scope({}, set())
            quals: list[Any] = [*conjuncts(select.whereClause)]
            for item in select.fromClause or ():
                self.from_item(item, scope, outer, quals)
            self.resolve(scope, quals, outer)
            aliases = user_id_of(target, scope, outer)
            # the user_id column of a table pinned to one user_id (not of a CTE or temp table)
            pinned = {a for a in scope.pinned if scope.relations.get(a) in self.distributed}
            if not (is_param(target) or (aliases and set(aliases) <= pinned)):
                self.problems.append(f"INSERT INTO {table}: user_id not from one parameter")
            self.sublinks(select, scope, outer)

    def add_relation(self, rv: Any, scope: Scope, outer: dict[str, bool]) -> None:
        alias = rv.alias.aliasname if rv.alias else rv.relname
        table = None if rv.relname in self.ctes else rv.relname
        scope.relations[alias] = table
        if table is None or table not in self.distributed:
            scope.pinned.add(alias)  # CTEs, reference and local tables need no pin

    def from_item(self, item: Any, scope: Scope, outer: dict[str, bool], quals: list[Any]) -> None:
        if isinstance(item, pg.RangeVar):
            self.add_relation(item, scope, outer)
        elif isinstance(item, pg.JoinExpr):
            self.from_item(item.larg, scope, outer, quals)
            self.from_item(item.rarg, scope, outer, quals)
            quals.extend(conjuncts(item.quals))
        elif isinstance(item, pg.RangeSubselect):
            inner_outer = {**outer, **{a: a in scope.pinned for a in scope.relations}}
            self.statement(item.subquery, inner_outer)
            alias = item.alias.aliasname if item.alias else "?"
            scope.relations[alias] = None
            scope.pinned.add(alias)
        elif isinstance(item, pg.RangeFunction):
            alias = item.alias.aliasname if item.alias else "?"
            scope.relations[alias] = None
            scope.pinned.add(alias)

    def resolve(self, scope: Scope, quals: list[Any], outer: dict[str, bool]) -> None:
        """Pin aliases by ``user_id = $n`` and by ``a.user_id = b.user_id`` chains."""
        outer_pinned = {a for a, p in outer.items() if p}
        changed = True
        while changed:
            changed = False
            for qual in quals:
                if not (
                    isinstance(qual, pg.A_Expr)
                    and qual.kind == enums.A_Expr_Kind.AEXPR_OP
                    and column_name(qual.name[0]) == "="
                ):
                    continue
                for a, b in ((qual.lexpr, qual.rexpr), (qual.rexpr, qual.lexpr)):
                    left = user_id_of(a, scope, outer)
                    if not left:
                        continue
                    right = user_id_of(b, scope, outer)
                    known = scope.pinned | outer_pinned
                    if is_param(b) or (right and set(right) <= known):
                        new = set(left) - scope.pinned
                        if new:
                            scope.pinned |= new
                            changed = True
        for alias, table in scope.relations.items():
            if table is not None and alias not in scope.pinned:
                self.problems.append(f"{table} ({alias}) is not pinned to one user_id")

    def sublinks(self, stmt: Any, scope: Scope, outer: dict[str, bool]) -> None:
        inner_outer = {**outer, **{a: a in scope.pinned for a in scope.relations}}
        for node in walk_sublinks(stmt):
            self.statement(node.subselect, inner_outer)


def walk_sublinks(node: Any) -> Iterator[Any]:
    """The SubLinks of one query level (not those inside FROM subqueries or CTEs)."""
    if isinstance(node, pg.SubLink):
        yield node
        return
    if isinstance(node, pg.Node):
        for name in node:
            if name in ("fromClause", "withClause", "larg", "rarg", "usingClause"):
                continue
            yield from walk_sublinks(getattr(node, name))
    elif isinstance(node, tuple | list):
        for item in node:
            yield from walk_sublinks(item)


@functools.cache
def parsed(sql: str) -> tuple[Any, ...]:
    return tuple(pglast.parse_sql(sql))


def check(sql: str, distributed: set[str]) -> list[str]:
    checker = Checker(distributed)
    for raw in parsed(sql):
        checker.statement(raw.stmt, {})
    return checker.problems


def test_every_query_and_write_runs_on_one_user_s_shard(statements: list[Statement]) -> None:
    distributed = distributed_tables()
    problems = {}
    multi_user = set()
    for s in statements:
        found = check(s.sql, distributed)
        if found and s.where in MULTI_USER:
            multi_user.add(s.where)
        elif found:
            problems[s.where] = (found, s.sql[:300])
    assert problems == {}
    print(
        f"\n{len(statements)} statements of {len({s.where for s in statements})} storage"
        f" functions: each on one user's shard, but {sorted(multi_user)}"
    )
    # each exception is still needed (else remove it from the list and the docs)
    assert multi_user == set(MULTI_USER)


@pytest.mark.parametrize(
    ("sql", "pinned"),
    [
        ("SELECT * FROM events WHERE user_id = $1 AND id = $2", True),
        ("SELECT * FROM events WHERE id = $1", False),
        ("SELECT * FROM events WHERE user_id = ANY($1::text[])", False),
        ("SELECT * FROM events WHERE user_id = $1 OR id = $2", False),
        (
            "SELECT e.id FROM events e JOIN channels c ON c.id = e.channel_id WHERE e.user_id = $1",
            False,
        ),
        (
            "SELECT e.id FROM events e JOIN channels c ON c.user_id = e.user_id"
            " AND c.id = e.channel_id WHERE e.user_id = $1",
            True,
        ),
        ("SELECT * FROM events WHERE user_id = $1 AND id IN (SELECT id FROM events)", False),
        (
            "SELECT (SELECT count(*) FROM folders f WHERE f.user_id = e.user_id) FROM events e"
            " WHERE e.user_id = $1",
            True,
        ),
        ("INSERT INTO events (user_id, id) VALUES ($1, $2)", True),
        ("INSERT INTO events (id) VALUES ($1)", False),
        ("INSERT INTO events (user_id, id) SELECT user_id, id FROM events_in", False),
        ("UPDATE events SET trashed = true WHERE channel_id = $1", False),
        ("DELETE FROM sessions WHERE user_id = $1 AND id = $2", True),
        ("WITH c AS (SELECT 1 FROM channels WHERE id = $2) SELECT * FROM c", False),
        ("SELECT * FROM users WHERE username = $1", True),  # a reference table
    ],
)
def test_the_checker_tells_one_shard_from_many(sql: str, pinned: bool) -> None:
    assert (check(sql, distributed_tables()) == []) is pinned
