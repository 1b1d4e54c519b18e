"""Built-in sample datasets, generated here (seeded, byte-for-byte reproducible), with known problems.

* ``support_tickets`` -- a text-classification CSV (ticket_id, text, label, channel) with planted
  exact duplicates, near-duplicates, PII, empty texts, a rare class and conflicting labels;
* ``support_tickets_test`` -- its test split, with rows leaked from train (exact and near copies);
* ``customers`` -- a tabular CSV with missing values, mixed types, outliers and a constant column;
* ``clean_reviews`` -- a balanced text-classification CSV with none of these problems.

``SAMPLES[name]["planted"]`` says how many problems of each kind were planted (tests hold the checks
to these numbers).
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

from engine.errors import ValidationError

_PRODUCTS = ["laptop", "phone", "headset", "router", "monitor", "keyboard", "printer", "tablet", "camera",
             "charger", "speaker", "smartwatch", "webcam", "dock", "mouse", "drive"]
_PROBLEMS = ["stopped charging", "will not turn on", "keeps restarting", "arrived with a cracked screen",
             "makes a buzzing noise", "drops the wifi connection", "shows an error at startup",
             "overheats after an hour", "lost all my settings", "is missing a cable", "flickers constantly",
             "does not pair with bluetooth", "runs very slowly", "has a sticky button"]
_ASKS = ["Can you send a replacement", "Please tell me how to fix it", "I would like a refund",
         "Could someone call me back", "What are my options", "Is this covered by the warranty",
         "How long will a repair take", "Should I ship it back"]
_WHEN = ["yesterday", "last week", "this morning", "two days ago", "after the update", "on Monday",
         "right after unboxing", "during a video call", "over the weekend", "since the move"]
_FEEL = ["I am really frustrated.", "This is the second time.", "I use it for work every day.",
         "It was a gift for my daughter.", "Thanks in advance.", "I already tried restarting it.",
         "The manual did not help.", "I bought it from your online store.", "", ""]
_BILLING = ["I was charged twice for order {n}", "My invoice {n} shows the wrong amount",
            "The discount code was not applied to order {n}", "I cannot update the card on my account {n}",
            "Why did my subscription price go up on invoice {n}"]
_ACCOUNT = ["I cannot log in to account {n} after resetting my password",
            "Please delete my account {n} and all my data", "The two-factor code for account {n} never arrives",
            "I want to change the email address on account {n}", "My account {n} was locked without warning"]
_LEGAL = ["Your product {p} caused damage to my property and I am contacting a lawyer about claim {n}",
          "I am filing a formal complaint with the consumer authority about order {n}"]

_NAMES = ["Priya", "Tom", "Aisha", "Lukas", "Mei", "Carlos", "Fatima", "Olga", "Kwame", "Sofia", "Hiro", "Nadia",
          "Ben", "Leila", "Marco", "Ingrid", "Yusuf", "Chloe", "Dmitri", "Ana", "Raj", "Emma", "Tariq", "Zoe"]
_CITIES = ["Lyon", "Leeds", "Porto", "Graz", "Turin", "Ghent", "Malmo", "Cork", "Bergen", "Poznan", "Seville",
           "Utrecht", "Basel", "Brno", "Tartu", "Split", "Bari", "Aarhus", "Lille", "Bilbao"]

LABELS = ("hardware", "billing", "account", "legal")


def _signoff(rng: random.Random) -> str:
    return f"{rng.choice(_NAMES)} from {rng.choice(_CITIES)}, ref {rng.randint(100, 999)}-{rng.choice('ABCDEFGHJK')}{rng.randint(10, 99)}"


def _ticket(rng: random.Random, label: str) -> str:
    n = rng.randint(10000, 99999)
    p = rng.choice(_PRODUCTS)
    if label == "hardware":
        core = f"My {p} {rng.choice(_PROBLEMS)} {rng.choice(_WHEN)}, order {n}."
    elif label == "billing":
        core = rng.choice(_BILLING).format(n=n) + f" for the {p} I bought {rng.choice(_WHEN)}."
    elif label == "account":
        core = rng.choice(_ACCOUNT).format(n=n) + f", it started {rng.choice(_WHEN)}."
    else:
        core = rng.choice(_LEGAL).format(n=n, p=p) + "."
    extra = rng.choice(_FEEL)
    return " ".join(x for x in (core, extra, rng.choice(_ASKS) + "?", _signoff(rng)) if x)


def _near_copy(rng: random.Random, text: str) -> str:
    """The same ticket with one word changed and different case/punctuation (Jaccard ~0.85-0.95)."""
    words = text.split()
    i = rng.randrange(1, len(words))
    words[i] = {"my": "the", "the": "my", "I": "we"}.get(words[i], words[i] + "s")
    return " ".join(words).upper().replace("?", "??")


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def _tickets(seed: int = 7) -> tuple[list[list[Any]], list[list[Any]]]:
    """(train rows, test rows) of the support-ticket sample, problems planted as documented."""
    rng = random.Random(seed)
    rows: list[list[Any]] = []
    plan = ["hardware"] * 170 + ["billing"] * 150 + ["account"] * 150 + ["legal"] * 6
    rng.shuffle(plan)
    for i, label in enumerate(plan):
        rows.append([f"T{100000 + i}", _ticket(rng, label), label, rng.choice(["email", "chat", "phone"])])
    # 8 rows with PII (emails, phone numbers)
    for k, i in enumerate(rng.sample(range(len(rows)), 8)):
        pii = (f" Reach me at jane.doe{k}@example.com." if k % 2 == 0 else f" Call me on +1 415 555 01{k:02d}.")
        rows[i][1] += pii
    # 6 empty texts
    for i in rng.sample(range(len(rows)), 6):
        rows[i][1] = ""
    nonempty = [i for i in range(len(rows)) if rows[i][1] and "@" not in rows[i][1] and "555" not in rows[i][1]]
    # 10 near-duplicates (new ticket ids, same label)
    for i in rng.sample(nonempty, 10):
        rows.append([f"T{100000 + len(rows)}", _near_copy(rng, rows[i][1]), rows[i][2], rows[i][3]])
    # 1 conflicting label: the same text again with a different label (2 rows involved)
    j = nonempty[3]
    other = "billing" if rows[j][2] != "billing" else "account"
    rows.append([f"T{100000 + len(rows)}", rows[j][1], other, rows[j][3]])
    # 12 exact duplicate rows (a re-export)
    for i in rng.sample(nonempty[10:], 12):
        rows.append(list(rows[i]))
    order = list(range(len(rows)))
    rng.shuffle(order)
    train = [rows[i] for i in order]
    # test split: 80 fresh tickets, 5 exact copies of train texts, 3 near copies
    test: list[list[Any]] = []
    for i in range(80):
        label = rng.choice(LABELS[:3])
        test.append([f"S{200000 + i}", _ticket(rng, label), label, rng.choice(["email", "chat", "phone"])])
    pool = [r for r in train if r[1] and "@" not in r[1] and "555" not in r[1]]
    picks = rng.sample(pool, 8)
    for k, r in enumerate(picks):
        text = r[1] if k < 5 else _near_copy(rng, r[1])
        test.insert(rng.randrange(len(test) + 1), [f"S{300000 + k}", text, r[2], r[3]])
    return train, test


def _customers(seed: int = 11) -> list[list[Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(400):
        rows.append([
            f"C{5000 + i}", str(rng.randint(18, 80)), f"{rng.uniform(30000, 75000):.2f}",
            rng.choice(["FR", "DE", "ES", "IT", "NL"]), f"2023-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            rng.choice(["basic", "pro", "team"]), rng.choice(["true", "false"]), "web",
        ])
    for i in rng.sample(range(400), 5):           # 5 mixed types in age
        rows[i][1] = rng.choice(["unknown", "n/k", "thirty"])
    for i in rng.sample(range(400), 4):           # 4 outliers in income
        rows[i][2] = f"{rng.choice([1, -1]) * rng.uniform(900000, 2000000):.2f}"
    miss = rng.sample(range(400), 20)             # 20 missing incomes, 10 missing countries
    for i in miss:
        rows[i][2] = ""
    for i in rng.sample([i for i in range(400) if i not in miss], 10):
        rows[i][3] = ""
    return rows


def _clean_reviews(seed: int = 3) -> list[list[Any]]:
    rng = random.Random(seed)
    good = ["works perfectly", "exceeded my expectations", "is worth every cent", "feels solid and well made",
            "was easy to set up", "has great battery life"]
    bad = ["broke within a week", "was a waste of money", "feels cheap and flimsy", "stopped working quickly",
           "was hard to set up", "has terrible battery life"]
    rows = []
    for i in range(300):
        label = "positive" if i % 2 == 0 else "negative"
        p = rng.choice(_PRODUCTS)
        text = (f"The {p} I ordered {rng.choice(_WHEN)} {rng.choice(good if label == 'positive' else bad)}; "
                f"order {rng.randint(10000, 99999)}, {rng.choice(['would', 'would not'] if label == 'negative' else ['would'])} "
                f"buy again. {_signoff(rng)}")
        rows.append([f"R{i}", text, label, f"{rng.uniform(1, 5):.1f}"])
    return rows


SAMPLES: dict[str, dict[str, Any]] = {
    "support_tickets": {
        "file": "support_tickets.csv", "text": "text", "label": "label", "test": "support_tickets_test",
        "description": "Support tickets to classify (hardware, billing, account, legal): 499 rows with planted "
                       "duplicates, near-duplicates, PII, empty texts, a rare class and a conflicting label.",
        "planted": {"duplicate_rows": 12, "near_duplicates": 10, "pii": 8, "empty_text": 6,
                    "conflicting_labels": 2, "label_imbalance_rare_class": "legal"},
    },
    "support_tickets_test": {
        "file": "support_tickets_test.csv", "text": "text", "label": "label", "test": None,
        "description": "The test split of support_tickets: 88 rows, 5 copied from train exactly and 3 nearly.",
        "planted": {"train_test_leakage": 8, "train_test_leakage_exact": 5},
    },
    "customers": {
        "file": "customers.csv", "text": None, "label": None, "test": None,
        "description": "A customer table (400 rows): missing incomes and countries, 'unknown' ages, income "
                       "outliers and a column with one value.",
        "planted": {"missing_values": 30, "mixed_types": 5, "outliers": 4, "constant_column": 1},
    },
    "clean_reviews": {
        "file": "clean_reviews.csv", "text": "text", "label": "label", "test": None,
        "description": "Product reviews (300 rows, positive/negative, balanced) with no planted problems.",
        "planted": {},
    },
}


def write_sample(name: str, directory: str | Path) -> Path:
    """Write sample ``name`` into ``directory`` and return its path."""
    if name not in SAMPLES:
        raise ValidationError(f"unknown sample {name!r}; allowed: {', '.join(SAMPLES)}")
    path = Path(directory) / SAMPLES[name]["file"]
    header = ["ticket_id", "text", "label", "channel"]
    if name == "support_tickets":
        return _write_csv(path, header, _tickets()[0])
    if name == "support_tickets_test":
        return _write_csv(path, header, _tickets()[1])
    if name == "customers":
        return _write_csv(path, ["customer_id", "age", "income", "country", "signup_date", "plan", "churned", "source"],
                          _customers())
    return _write_csv(path, ["review_id", "text", "label", "stars"], _clean_reviews())


def write_sharded_corpus(directory: str | Path, shards: int = 4, rows_per_shard: int = 200, seed: int = 5,
                         gzip_every: int = 0) -> dict[str, int]:
    """A folder of JSON Lines shards (``part-00000.jsonl`` ...; every ``gzip_every``-th one gzipped) of
    support tickets with problems planted *across* shards: every 10th row repeats an earlier row
    exactly (from another shard when there is one), every 19th repeats an earlier row's text under a new
    id, every 13th is a near copy of an earlier text, every 17th carries an email address, every 11th
    lacks its label. Returns what was planted (counts that overlap are counted in each kind)."""
    import gzip
    import json

    rng = random.Random(seed)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    earlier: list[dict[str, Any]] = []
    planted = {"exact": 0, "text_copy": 0, "near": 0, "email": 0, "missing_label": 0, "rows": 0}
    labels = ["hardware", "billing", "account"]
    for s in range(shards):
        gz = gzip_every and (s + 1) % gzip_every == 0
        path = out / (f"part-{s:05d}.jsonl" + (".gz" if gz else ""))
        opener = gzip.open if gz else open
        with opener(path, "wt", encoding="utf-8") as f:
            for i in range(rows_per_shard):
                n = s * rows_per_shard + i
                pool = s * rows_per_shard or len(earlier)  # from an earlier shard when there is one
                if n % 10 == 9 and earlier:
                    rec = dict(earlier[rng.randrange(pool)])
                    planted["exact"] += 1
                else:
                    label = labels[n % 3]
                    # a few rare words make unrelated tickets dissimilar, as real text is (templates alone share bands)
                    rare = " ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 8)))
                                    for _ in range(8))
                    text = f"{_ticket(rng, label)} (case {n}: {rare})"
                    if n % 19 == 18 and earlier:  # an earlier row's text under a new id (its label or not)
                        text = earlier[rng.randrange(pool)]["text"]
                        planted["text_copy"] += 1
                    elif n % 13 == 12 and earlier:
                        text = _near_copy(rng, earlier[rng.randrange(pool)]["text"])
                        planted["near"] += 1
                    if n % 17 == 16 and n % 19 != 18:
                        text += f" Write to me at user{n}@example.com."
                        planted["email"] += 1
                    rec = {"id": str(n), "text": text, "label": None if n % 11 == 10 else label}
                    planted["missing_label"] += rec["label"] is None
                earlier.append(rec)
                f.write(json.dumps(rec) + "\n")
                planted["rows"] += 1
    return planted
