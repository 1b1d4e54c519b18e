"""low_quality_text on short-text data (issue 11 item 2): a clean review set whose median is about 52
words is not low quality, and junk planted in it is still found."""

from __future__ import annotations

import random

from .conftest import by_id, check, write_csv

_PRODUCTS = ["blender", "kettle", "backpack", "desk lamp", "office chair", "rain jacket", "coffee grinder",
             "yoga mat", "air fryer", "water bottle", "phone case", "standing desk", "tent", "router"]
_OPENERS = ["I bought this {p} for my {who} and", "After three {t} with the {p} I can say that",
            "We replaced our old {p} with this one and", "My {who} recommended this {p}, and honestly",
            "I was unsure about ordering a {p} online, but", "This is my second {p} from this brand and"]
_BODIES = ["it does exactly what the description promises", "the build quality is better than expected",
           "the instructions were clear and setup took a few minutes", "it feels sturdy without being heavy",
           "the color matches the photos on the listing", "it is quieter than the one it replaced",
           "the price was fair for what you get", "delivery was quick and the box was well packed",
           "the materials look like they will last for years", "cleaning it afterwards is simple"]
_DETAILS = ["The only downside is that the cable could be a little longer.", "Customer service answered my "
            "question within a day.", "I use it almost every morning before work.", "It fits nicely on a "
            "small kitchen counter.", "My kids figured out how to use it right away.", "It survived a long "
            "weekend trip without any scratches.", "I would have liked one more color option.", "The "
            "smell of new plastic faded after a couple of days.", "It arrived a day earlier than promised.",
            "The handle stays cool even after long use.", "Battery life has been better than advertised.",
            "The manual also explains how to order spare parts."]
_CLOSERS = ["Overall I am happy with it.", "I would buy it again.", "Recommended for anyone on a budget.",
            "Four stars only because of the price.", "It is a solid choice for everyday use.",
            "I already ordered another one as a gift."]


def review(rng: random.Random) -> str:
    target = max(6, int(rng.lognormvariate(3.95, 0.45)))        # median ~52 words, from ~15 to ~150
    p, who, t = rng.choice(_PRODUCTS), rng.choice(["wife", "son", "office", "studio", "parents"]), rng.choice(["weeks", "months"])
    body, *more = rng.sample(_BODIES, len(_BODIES))
    parts = [rng.choice(_OPENERS).format(p=p, who=who, t=t) + " " + body + "."]
    pool = rng.sample(_DETAILS + _CLOSERS + [b.capitalize() + "." for b in more], len(_DETAILS) + len(_CLOSERS) + len(more))
    while sum(len(x.split()) for x in parts) < target and pool:
        parts.append(pool.pop())
    words = " ".join(parts).split()
    return " ".join(words[: max(target, 6)])


def reviews_file(tmp_path, junk: dict[int, str] | None = None, n: int = 5000):
    rng = random.Random(42)
    rows = [[str(200_000 + i), review(rng), rng.choice(["positive", "negative"]), str(rng.randint(1, 5))]
            for i in range(n)]
    for i, text in (junk or {}).items():
        rows[i][1] = text
    return write_csv(tmp_path / "reviews.csv", ["review_id", "text", "label", "stars"], rows)


def test_clean_short_reviews_are_not_low_quality(tmp_path):
    report = check(reviews_file(tmp_path), text_col="text", label_col="label")   # every check
    lq = by_id(report, "low_quality_text")
    assert all(f.severity in ("low", "info") for f in lq), [(f.severity, f.title) for f in lq]
    assert not [f for f in report.findings if f.severity in ("critical", "high", "medium")], \
        [(f.id, f.severity, f.title) for f in report.findings]
    assert report.score >= 90
    if lq:
        assert 45 <= lq[0].details["median_words"] <= 60


def test_junk_planted_in_short_reviews_is_flagged(tmp_path):
    junk = {10: "ok", 20: "- buy\n- now\n- cheap\n- deal\n- click", 30: " ".join(["#sale #deal #promo"] * 10),
            40: "spam spam spam spam\nspam spam spam spam\nspam spam spam spam\nspam spam spam spam\nx y z",
            50: "?"}
    report = check(reviews_file(tmp_path, junk), text_col="text", label_col="label", checks=("low_quality_text",))
    [f] = [f for f in by_id(report, "low_quality_text") if f.severity != "info"]
    assert {10, 20, 30, 40, 50} <= set(f.rows)
    assert f.count <= 20          # the planted junk, and not a large share of clean reviews


def test_a_rule_firing_on_most_of_a_dataset_is_not_a_finding():
    from engine.datacheck.base import Context
    from engine.datacheck.checks.low_quality_text import LowQualityText

    rng = random.Random(5)
    queries = [" ".join(rng.sample(["red", "shoes", "cheap", "laptop", "bag", "usb", "cable", "lamp"], rng.randint(1, 3)))
               for _ in range(300)]
    ctx = Context(kind="text", columns=["text"], text_col="text", rows=len(queries))
    import pandas as pd

    check = LowQualityText()
    check.start(ctx)
    check.update(pd.DataFrame({"text": queries}), ctx)
    findings = check.finish(ctx)
    assert [f.severity for f in findings] == ["info"]          # search queries are short by nature
    assert "too_short" in findings[0].details["dataset_wide_rules"]
