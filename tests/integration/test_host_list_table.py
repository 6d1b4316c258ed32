"""`ams host list` as a table (its own narrow query, drawn by text_table) shows the hosts that
`--output json` lists, in the same order, drawn as prettytable draws them."""

import pytest
import sqlalchemy as sa
from prettytable import PrettyTable

from amslib.cli.host_cmd import LIST_COLUMNS
from tests.completiondb import fill


@pytest.fixture
def filled(ams_db, db_url):
    engine = sa.create_engine(db_url)
    try:
        fill(engine)
        with engine.begin() as conn:  # a host with a Name tag outside ASCII: drawn by prettytable
            conn.execute(sa.text("UPDATE hosts SET name = :name, ip_internal = :ip WHERE hostname = :host"),
                         {"name": "Zürich 日本", "ip": "10.0.0.9", "host": "db1.example.com"})
    finally:
        engine.dispose()
    return ams_db


def expected_table(rows):
    table = PrettyTable([header for _, header in LIST_COLUMNS])
    table.align = "l"
    for row in rows:
        table.add_row(["" if row.get(key) is None else str(row[key]) for key, _ in LIST_COLUMNS])
    return table.get_string() + "\n"


@pytest.mark.parametrize("args", [
    (),
    ("--zone", "us-east"),
    ("host", "--prefix", "web"),
    ("host", "--like", "*_x*"),
    ("host", "db1.example.com"),
    ("instance_id", "--prefix", "i-0a"),
])
def test_the_table_matches_the_json_listing(filled, args):
    listed = filled("host", "list", *args, "--output", "json")
    assert listed.code == 0, str(listed)
    rows = listed.json
    assert rows, "every case lists at least one host"
    table = filled("host", "list", *args)
    assert table.code == 0, str(table)
    assert table.out == expected_table(rows)


def test_no_match_is_the_note(filled):
    result = filled("host", "list", "host", "nothing-like-this")
    assert result.code == 0 and result.out.strip() == "no hosts match"
