"""What every chunk shares (window, catalogue, stores, kiosks, campaigns), id counters, a batch."""

from __future__ import annotations

import calendar
import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa

from tools.sample_data.shapes import (ADJECTIVES, BLOG_POSTS, CAMPAIGN_EVERY_DAYS, CATEGORIES,
    CATEGORY_BASE_PRICE, CATEGORY_NOUNS, DAY)
from tools.sample_data.values import cat, ids, integers, uuids


@dataclass(frozen=True)
class Catalogue:
    sku: pa.Array
    name: pa.Array
    category: pa.Array
    price_cents: np.ndarray
    popularity: np.ndarray
    page_path: pa.Array  # pages: home, products..., categories..., cart, checkout, account, ...
    page_title: pa.Array
    page_product: np.ndarray  # product index of a page, -1 when not a product page
    page_weights: np.ndarray


@dataclass(frozen=True)
class World:
    seed: int
    customers: int
    start: int  # window start, epoch seconds UTC
    end: int  # window end (last second of end_date), epoch seconds UTC
    catalogue: Catalogue
    store_ids: pa.Array
    kiosk_ids: pa.Array
    kiosk_ips: pa.Array
    campaign_ids: pa.Array
    campaign_times: np.ndarray

    def salt(self, stream: str) -> int:
        return stream_salt(self.seed, stream)


def stream_salt(seed: int, stream: str) -> int:
    """A 64-bit salt for one id stream, fixed by the seed."""
    digest = hashlib.blake2b(f"{seed}:{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())


def months_before(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    year, month = index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def make_catalogue(rng: np.random.Generator) -> Catalogue:
    skus, names, categories, prices = [], [], [], []
    for c, nouns in enumerate(CATEGORY_NOUNS):
        for noun in nouns:
            for adjective in rng.choice(ADJECTIVES, size=3, replace=False):
                price = CATEGORY_BASE_PRICE[c] * rng.lognormal(0.0, 0.4)
                skus.append(f"SKU-{10_001 + len(skus)}")
                names.append(f"{adjective} {noun}")
                categories.append(CATEGORIES[c])
                prices.append(max(int(round(price)) * 100 - 1, 199))
    popularity = 1.0 / (rng.permutation(len(skus)) + 5.0)
    popularity /= popularity.sum()
    slugs = [n.lower().replace(" ", "-") for n in names]
    paths = (["/"] + [f"/products/{s}" for s in slugs]
             + [f"/collections/{c.lower()}" for c in CATEGORIES]
             + ["/cart", "/checkout", "/account", "/account/login"]
             + [f"/blog/{b}" for b in BLOG_POSTS])
    titles = (["Home | Example Shop"] + [f"{n} | Example Shop" for n in names]
              + [f"{c} | Example Shop" for c in CATEGORIES]
              + ["Your Cart", "Checkout", "My Account", "Sign In"]
              + [b.replace("-", " ").capitalize() + " | Blog" for b in BLOG_POSTS])
    weights = np.concatenate([
        [0.18], 0.45 * popularity, np.full(len(CATEGORIES), 0.17 / len(CATEGORIES)),
        [0.07, 0.03, 0.05, 0.02], np.full(len(BLOG_POSTS), 0.03 / len(BLOG_POSTS)),
    ])
    return Catalogue(
        sku=pa.array(skus), name=pa.array(names), category=pa.array(categories),
        price_cents=np.array(prices, dtype=np.int64), popularity=popularity,
        page_path=pa.array(paths), page_title=pa.array(titles),
        page_product=np.concatenate([[-1], np.arange(len(skus)),
                                     np.full(len(paths) - 1 - len(skus), -1)]),
        page_weights=weights / weights.sum(),
    )


def make_world(customers: int, seed: int, end_date: date, months: int) -> World:
    rng = np.random.default_rng([seed, 2**31 - 1])
    start = epoch(months_before(end_date, months))
    end = epoch(end_date + timedelta(days=1)) - 1
    n_stores = max(3, min(300, customers // 10_000 + 3))
    n_kiosks = max(1, customers // 50_000)
    kiosk_ip_last = rng.integers(2, 250, size=n_kiosks)
    campaign_times = np.arange(start + 14 * 3600, end, CAMPAIGN_EVERY_DAYS * DAY, dtype=np.int64)
    campaign_ids = [
        "cmp-" + datetime.fromtimestamp(int(t), tz=timezone.utc).strftime("%Y%m%d")
        for t in campaign_times
    ]
    return World(
        seed=seed, customers=customers, start=start, end=end,
        catalogue=make_catalogue(rng),
        store_ids=ids("store-", np.arange(1, n_stores + 1), 3),
        kiosk_ids=uuids(np.arange(n_kiosks), stream_salt(seed, "kiosk")),
        kiosk_ips=cat("198.51.100.", integers(kiosk_ip_last)),
        campaign_ids=pa.array(campaign_ids), campaign_times=campaign_times,
    )


class Counters:
    """Running record numbers per id stream, so ids stay unique across chunks."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def take(self, stream: str, count: int) -> np.ndarray:
        first = self._next.get(stream, 0)
        self._next[stream] = first + count
        return np.arange(first, first + count, dtype=np.int64)
@dataclass
class Batch:
    """Rows of one source for one chunk, before dirt that applies to every source."""

    columns: dict[str, pa.Array]
    when: np.ndarray  # epoch seconds per row: the file is ordered by it
    owners: np.ndarray | None  # local person index per row; None when rows carry no person
    truth_rows: np.ndarray | None = None  # rows listed in the truth (default: all)

    @property
    def n(self) -> int:
        return len(self.when)
