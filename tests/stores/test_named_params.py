"""``:name`` parameters found as PostgreSQL reads the text, not by a blind regular expression."""

from __future__ import annotations

import pytest

from blocklake.stores.named_params import parse_named


@pytest.mark.parametrize(
    ("sql", "pyformat", "names"),
    [
        ("SELECT :a, :b, :a", "SELECT %(a)s, %(b)s, %(a)s", ("a", "b")),
        ("SELECT :n::bigint", "SELECT %(n)s::bigint", ("n",)),
        ("SELECT 'x'::regclass", "SELECT 'x'::regclass", ()),
        ("SELECT 7 % :m", "SELECT 7 %% %(m)s", ("m",)),
        ("SELECT ':no' || :yes", "SELECT ':no' || %(yes)s", ("yes",)),
        ("SELECT 'it''s :no'", "SELECT 'it''s :no'", ()),
        ("SELECT E'it\\'s :no', :yes", "SELECT E'it\\'s :no', %(yes)s", ("yes",)),
        ('SELECT ":no" FROM t', 'SELECT ":no" FROM t', ()),
        ("SELECT 1 -- :no\n, :yes", "SELECT 1 -- :no\n, %(yes)s", ("yes",)),
        ("SELECT /* :no */ :yes", "SELECT /* :no */ %(yes)s", ("yes",)),
        ("DO $$ BEGIN x := :no; END $$", "DO $$ BEGIN x := :no; END $$", ()),
        ("SELECT $f$ :no $f$, :yes", "SELECT $f$ :no $f$, %(yes)s", ("yes",)),
        ("SELECT '50%' LIKE :p", "SELECT '50%%' LIKE %(p)s", ("p",)),
        ("SELECT :_page_2", "SELECT %(_page_2)s", ("_page_2",)),
    ],
)
def test_parameters_outside_literals_comments_and_casts(sql, pyformat, names) -> None:
    statement = parse_named(sql)
    assert statement.pyformat == pyformat
    assert statement.names == names
