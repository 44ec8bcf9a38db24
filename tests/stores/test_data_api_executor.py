"""What only the Data API adapter has to handle: resuming clusters, the 1 MB limit, typed fields."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from blocklake.stores.data_api import DataApiExecutor, DatabaseStillResuming, RowTooLarge
from tests.support.rds_data_shim import CLUSTER_ARN, SECRET_ARN, RdsDataShim

RESUMING = "The Aurora DB instance db-1 is resuming after being auto-paused. Please wait."


@pytest.fixture
def executor(rds_data_shim: RdsDataShim) -> DataApiExecutor:
    return DataApiExecutor(CLUSTER_ARN, SECRET_ARN, "blocklake", client=rds_data_shim.client())


def operations(shim: RdsDataShim) -> list[str]:
    return [operation for operation, _ in shim.calls]


def test_a_resuming_cluster_is_waited_for(executor, rds_data_shim: RdsDataShim) -> None:
    rds_data_shim.fail_next("ExecuteStatement", "DatabaseResumingException", RESUMING)
    rds_data_shim.fail_next("ExecuteStatement", "BadRequestException", RESUMING)  # older form
    assert executor.query("SELECT 1 AS one") == [{"one": 1}]
    assert operations(rds_data_shim) == ["ExecuteStatement"] * 3


def test_a_cluster_that_does_not_resume_is_a_clear_error(rds_data_shim: RdsDataShim) -> None:
    executor = DataApiExecutor(
        CLUSTER_ARN, SECRET_ARN, "blocklake", client=rds_data_shim.client(), resume_timeout_s=0.5
    )
    rds_data_shim.fail_next("BeginTransaction", "DatabaseResumingException", RESUMING, times=9)
    with (
        pytest.raises(DatabaseStillResuming, match="still resuming after 0 s"),
        executor.transaction(),
    ):
        pass
    assert 2 <= len(rds_data_shim.calls) <= 3  # 0.25 s, then 0.5 s would pass the deadline


def test_other_errors_are_not_retried(executor, rds_data_shim: RdsDataShim) -> None:
    with pytest.raises(ClientError, match="DatabaseErrorException"):
        executor.query("SELECT * FROM no_such_table")
    assert len(rds_data_shim.calls) == 1


def test_results_arrive_typed(executor) -> None:
    row = executor.query(
        "SELECT :big::bigint AS big, :text AS text, :none::text AS none, :flag AS flag, "
        ":ratio AS ratio, :blob::bytea AS blob, 2.5::numeric AS exact",
        {"big": 2**62, "text": "é", "none": None, "flag": True, "ratio": 0.25, "blob": b"\0\1"},
    )
    assert row == [
        {
            "big": 2**62,
            "text": "é",
            "none": None,
            "flag": True,
            "ratio": 0.25,
            "blob": b"\0\1",
            "exact": "2.5",  # NUMERIC comes back as a string, as from the real Data API
        }
    ]


def test_only_the_parameters_a_statement_names_are_sent(executor, rds_data_shim) -> None:
    executor.query("SELECT :a AS a", {"a": 1, "unused": "x"})
    assert [p["name"] for p in rds_data_shim.calls[0][1]["parameters"]] == ["a"]
    with pytest.raises(KeyError, match="b"):
        executor.query("SELECT :a, :b", {"a": 1})


def test_a_transaction_is_one_transaction_id(executor, rds_data_shim: RdsDataShim) -> None:
    executor.execute("CREATE TABLE t (n BIGINT)")
    with executor.transaction():
        executor.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(RuntimeError), executor.transaction():
        executor.execute("INSERT INTO t VALUES (2)")
        raise RuntimeError
    assert executor.query("SELECT n FROM t") == [{"n": 1}]
    calls = rds_data_shim.calls
    assert [op for op, _ in calls[1:4]] == [
        "BeginTransaction",
        "ExecuteStatement",
        "CommitTransaction",
    ]
    assert calls[2][1]["transactionId"] == calls[3][1]["transactionId"]
    assert [op for op, _ in calls[4:7]] == [
        "BeginTransaction",
        "ExecuteStatement",
        "RollbackTransaction",
    ]


@pytest.fixture
def many_rows(executor: DataApiExecutor, rds_data_shim: RdsDataShim) -> list[dict]:
    executor.execute("CREATE TABLE big (n BIGINT, text TEXT)")
    executor.execute("INSERT INTO big SELECT n, repeat('x', 50) FROM generate_series(1, 300) n")
    rds_data_shim.max_response_bytes = 4_000  # about 40 rows
    rds_data_shim.calls.clear()
    return [{"n": n, "text": "x" * 50} for n in range(1, 301)]


def test_a_result_over_the_size_limit_is_paged(executor, rds_data_shim, many_rows) -> None:
    executor = DataApiExecutor(
        CLUSTER_ARN, SECRET_ARN, "blocklake", client=rds_data_shim.client(), first_page_rows=100
    )
    assert executor.query("SELECT n, text FROM big WHERE n > :low ORDER BY n", {"low": 0}) == (
        many_rows
    )
    statements = [request["sql"] for op, request in rds_data_shim.calls if op == "ExecuteStatement"]
    assert any("LIMIT" in sql for sql in statements)
    assert "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ" in statements
    assert operations(rds_data_shim)[-1] == "CommitTransaction"


def test_paging_inside_a_transaction_uses_it(executor, rds_data_shim, many_rows) -> None:
    with executor.transaction():
        assert executor.query("SELECT n, text FROM big ORDER BY n") == many_rows
    assert operations(rds_data_shim).count("BeginTransaction") == 1


def test_a_row_over_the_limit_cannot_be_paged(executor, rds_data_shim, many_rows) -> None:
    with pytest.raises(RowTooLarge):
        executor.query("SELECT repeat('y', 5000) AS huge")
