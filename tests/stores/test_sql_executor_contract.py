"""The SqlExecutor contract the metadata store relies on, on every backend."""

from __future__ import annotations

import threading

import pytest

from blocklake.stores.sql import SqlExecutor


@pytest.fixture
def table(executor: SqlExecutor) -> SqlExecutor:
    executor.execute("CREATE TABLE items (name TEXT PRIMARY KEY, size BIGINT, note TEXT)")
    return executor


def names(executor: SqlExecutor) -> list[str]:
    return [row["name"] for row in executor.query("SELECT name FROM items ORDER BY name")]


def test_values_round_trip_with_their_types(table: SqlExecutor) -> None:
    table.execute(
        "INSERT INTO items (name, size, note) VALUES (:name, :size, :note)",
        {"name": "é:x", "size": 1_794_000_000_000_000_000, "note": None},
    )
    assert table.query("SELECT name, size, note FROM items") == [
        {"name": "é:x", "size": 1_794_000_000_000_000_000, "note": None}
    ]


def test_execute_counts_changed_rows(table: SqlExecutor) -> None:
    for name in "abc":
        assert table.execute("INSERT INTO items (name, size) VALUES (:n, 1)", {"n": name}) == 1
    assert table.execute("UPDATE items SET size = 2 WHERE name <> :n", {"n": "a"}) == 2


def test_percent_signs_and_colons_in_literals_are_text(table: SqlExecutor) -> None:
    table.execute(
        "INSERT INTO items (name, note) VALUES ('100% :not_a_parameter', :note)", {"note": "50%"}
    )
    assert table.query("SELECT name, note FROM items WHERE note LIKE '%\\%%' ESCAPE '\\'") == [
        {"name": "100% :not_a_parameter", "note": "50%"}
    ]


def test_a_transaction_commits_all_or_nothing(table: SqlExecutor) -> None:
    with table.transaction():
        table.execute("INSERT INTO items (name) VALUES ('kept')")
        table.execute("INSERT INTO items (name) VALUES ('kept too')")
    with pytest.raises(RuntimeError), table.transaction():
        table.execute("INSERT INTO items (name) VALUES ('lost')")
        raise RuntimeError("abandon")
    assert names(table) == ["kept", "kept too"]


def test_a_nested_transaction_joins_the_outer_one(table: SqlExecutor) -> None:
    with pytest.raises(RuntimeError), table.transaction():
        with table.transaction():
            table.execute("INSERT INTO items (name) VALUES ('inner')")
        raise RuntimeError("the outer one fails after the inner one ended")
    assert names(table) == []


def test_a_failed_statement_rolls_its_transaction_back(table: SqlExecutor) -> None:
    with pytest.raises(Exception), table.transaction():  # noqa: B017 (each backend its own error)
        table.execute("INSERT INTO items (name) VALUES ('first')")
        table.execute("INSERT INTO items (name) VALUES ('first')")
    assert names(table) == []
    table.execute("INSERT INTO items (name) VALUES ('usable afterwards')")
    assert names(table) == ["usable afterwards"]


def test_threads_get_their_own_transactions(table: SqlExecutor) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for item in range(5):
                with table.transaction():
                    table.execute(
                        "INSERT INTO items (name, size) VALUES (:name, :size)",
                        {"name": f"{worker}-{item}", "size": item},
                    )
                    table.execute(
                        "UPDATE items SET note = 'done' WHERE name = :name",
                        {"name": f"{worker}-{item}"},
                    )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert table.query("SELECT count(*) AS n FROM items WHERE note = 'done'") == [{"n": 30}]
