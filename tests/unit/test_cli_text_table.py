"""text_table draws exactly what prettytable draws, only faster."""

import random
import string
import time

import pytest
from prettytable import PrettyTable

from amslib.cli.text_table import render


def prettytable(headers, rows):
    table = PrettyTable(headers)
    table.align = "l"
    for row in rows:
        table.add_row(row)
    return table.get_string()


def test_random_plain_tables_match_prettytable():
    rng = random.Random(13)
    printable = string.ascii_letters + string.digits + string.punctuation + " "
    compared = 0
    for _ in range(1500):
        columns = rng.randint(1, 7)
        headers = ["".join(rng.choice(string.ascii_letters + " _") for _ in range(rng.randint(1, 10)))
                   for _ in range(columns)]
        if len(set(headers)) < columns:
            continue
        rows = [["".join(rng.choice(printable) for _ in range(rng.randint(0, 14))) for _ in range(columns)]
                for _ in range(rng.randint(0, 6))]
        assert render(headers, rows) == prettytable(headers, rows), (headers, rows)
        compared += 1
    assert compared > 1000


@pytest.mark.parametrize("cell", ["naïve", "日本語", "two\nlines", "tab\there", "\x1b[1mbold\x1b[0m", "e\u0301"])
def test_cells_prettytable_measures_differently_go_to_prettytable(cell):
    headers = ["Name", "Value"]
    rows = [["a", cell], ["bb", "plain"]]
    assert render(headers, rows) == prettytable(headers, rows)


def test_an_empty_table_is_headers_between_rules():
    assert render(["A", "Bee"], []) == "+---+-----+\n| A | Bee |\n+---+-----+\n+---+-----+"


def test_ten_thousand_rows_take_a_fraction_of_prettytable():
    rows = [[f"i-{n:017x}", f"web-{n:05d}.example.com", "discovery", f"node {n}", "us-east-1a", "m5.large",
             "running", f"10.0.{n // 256}.{n % 256}", ""] for n in range(10000)]
    headers = ["Instance ID", "Hostname", "Set by", "Name", "Zone", "Type", "State", "Private IP", "Public IP"]
    started = time.perf_counter()
    ours = render(headers, rows)
    elapsed = time.perf_counter() - started
    assert ours == prettytable(headers, rows)
    assert elapsed < 0.25
