"""PII by column meaning and value (issue 11 item 4): person names, street addresses, dates of birth,
SSNs and IBANs, reported as ``pii`` with their kind and masked by the safe fix; precision kept."""

from __future__ import annotations

import csv
import random

from engine.datacheck.checks.pii import column_kind
from engine.datacheck.masking import mask_value

from .conftest import by_id, check, write_csv

FIRST = ["Cesar A.", "Louis A.", "Elbert O.", "Wilson", "Brian E.", "Juanita", "Dennis", "Gregory", "Anthony",
         "Jose L.", "Kevin", "Mario", "Howard", "Matthew", "Edward", "Arturo"]
LAST = ["Aguilar", "Williams", "Wilson", "Alvarado", "Andrade", "Banks", "Bell", "Jackson", "Taylor", "Garcia",
        "Mejia", "Orozco", "Pettis", "Haines", "Travis", "Lopez"]
STREETS = ["W. 6th St.", "S. Vermont Ave.", "Florence Ave.", "E. 43rd Pl.", "Crenshaw Blvd.", "W. Adams Blvd.",
           "S. Figueroa St.", "Normandie Ave."]


def la_riots_like(tmp_path, n: int = 63):
    """The shape of vega_datasets' la-riots: one row per person who died, named, aged, with an address."""
    rng = random.Random(1992)
    rows = []
    for i in range(n):
        address = (f"{rng.randint(100, 9999)} {rng.choice(STREETS)}" if i % 9 else
                   f"{rng.choice(STREETS)} & {rng.choice(STREETS)}")
        rows.append([rng.choice(FIRST), rng.choice(LAST), str(rng.randint(15, 65)), rng.choice(["Male", "Female"]),
                     rng.choice(["Black", "Latino", "White", "Asian"]), f"1992-04-{rng.randint(29, 30)}",
                     address, rng.choice(["Westlake", "Watts", "Koreatown", "Hyde Park"]),
                     rng.choice(["Homicide", "Officer-involved shooting", "Death"]),
                     f"{-118.3 + rng.uniform(-0.1, 0.1):.6f}", f"{34.0 + rng.uniform(-0.1, 0.1):.6f}"])
    return write_csv(tmp_path / "la-riots.csv", ["first_name", "last_name", "age", "gender", "race", "death_date",
                                                 "address", "neighborhood", "type", "longitude", "latitude"], rows)


def test_named_people_and_addresses_are_personal_data(tmp_path):
    report = check(la_riots_like(tmp_path))
    [f] = by_id(report, "pii")
    assert f.count == 63 and f.severity == "high"
    assert f.details["columns_by_kind"] == {"first_name": "name", "last_name": "name", "address": "address"}
    assert set(f.details["rows_by_kind"]) == {"name", "address"}
    shown = " ".join(e["text"] for e in f.examples)
    assert not any(last in shown for last in LAST)      # examples are masked


def test_safe_fix_masks_names_and_addresses(tmp_path):
    out = tmp_path / "clean.csv"
    check(la_riots_like(tmp_path), fix_out=out)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 63
    assert not any(r["last_name"] in LAST for r in rows) and all(r["last_name"][0].isupper() for r in rows)
    assert not any(any(ch.isdigit() for ch in r["address"]) for r in rows)
    assert rows[0]["age"].isdigit() and rows[0]["neighborhood"]    # other columns untouched


def test_birth_dates_ssn_and_iban_columns(tmp_path):
    rng = random.Random(4)
    ibans = ["DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606"]
    rows = [[f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
             f"{rng.randint(100, 599)}{rng.randint(10, 99)}{rng.randint(1000, 9999)}", rng.choice(ibans),
             str(rng.randint(1, 9))] for _ in range(40)]
    report = check(write_csv(tmp_path / "people.csv", ["date_of_birth", "ssn", "iban", "visits"], rows))
    [f] = by_id(report, "pii")
    assert f.details["columns_by_kind"] == {"date_of_birth": "date_of_birth", "ssn": "ssn", "iban": "iban"}
    assert mask_value("date_of_birth", "1984-07-19") == "1984-**-**"
    assert mask_value("ssn", "536-22-8726") == "***-**-8726"


def test_products_cities_and_plain_dates_are_not_personal(tmp_path):
    rng = random.Random(5)
    products = ["Wireless Mouse", "Desk Lamp", "Standing Desk", "Usb Cable", "Office Chair", "Coffee Grinder"]
    rows = [[f"P{1000 + i}", rng.choice(products), rng.choice(["Lyon", "Porto", "Graz", "New York"]),
             f"{rng.uniform(5, 300):.2f}", f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"] for i in range(60)]
    report = check(write_csv(tmp_path / "products.csv", ["sku", "name", "city", "price", "created"], rows))
    assert by_id(report, "pii") == []
    import pandas as pd

    assert column_kind("city", pd.Series(["Lyon", "Porto"] * 10, dtype="str"), ["city", "age"]) is None
    people = pd.Series(["Ana Lopez", "Tom Banks", "Mei Wong"] * 10, dtype="str")
    assert column_kind("name", people, ["name", "price"]) is None           # no personal context: products?
    assert column_kind("name", people, ["name", "age", "email"]) == "name"  # a table about people
