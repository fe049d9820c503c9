"""Deterministic, dirty sample landing files for every contract source, with ground truth."""

from __future__ import annotations

import argparse
import calendar
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from orchestration.ingestion.contract import SOURCES, LandingSource

# ---------------------------------------------------------------------------------------------
# Rates and shapes (documented in docs/sample-data.md; change both together)
# ---------------------------------------------------------------------------------------------
CHUNK_SIZE = 25_000  # people generated (and appended to every file) per step; bounds memory
DAY = 86_400
YEAR = 365.25 * DAY

ANONYMOUS_ONLY_RATE = 0.20  # people who only ever browse anonymously (never identified anywhere)
HAS_PHONE_RATE = 0.85  # known people with a phone number
ALT_EMAIL_RATE = 0.08  # known people who also use a second (work) address
HOUSEHOLD_RATE = 0.03  # known people with a phone who share it with a household partner
WEB_RATE = 0.75  # known people with tracked web devices
DEVICE_IDENTIFY_RATE = 0.80  # devices of known people on which they identify at least once
KIOSK_USER_RATE = 0.08  # known web people who also identify on a shared in-store kiosk
REGISTERED_RATE = 0.55  # known people with a shop account (shop_customer_id = Segment user_id)
LOGGED_IN_ORDER_RATE = 0.85  # orders of registered people placed while logged in
BUYER_RATE = 0.70  # known people who buy at least once (first purchase at acquisition)
LOYALTY_STORE_RATE = 0.60  # store shoppers in the loyalty programme
LOYALTY_ONLINE_RATE = 0.08  # online-only shoppers in the loyalty programme
CARD_SCANNED_RATE = 0.80  # store transactions of members with the loyalty card scanned
CRM_RATE = 0.35  # known people in the CRM
CRM_DUPLICATE_RATE = 0.04  # CRM people entered twice (two contact_ids)
EMAIL_SUBSCRIBER_RATE = 0.45  # known people on the newsletter list
CAMPAIGN_EVERY_DAYS = 14
CAMPAIGN_RECEIVE_RATE = 0.35  # share of campaigns (after subscribing) a subscriber is sent
SUPPORT_RATE = 0.12  # known people with at least one support ticket
CONSENT_RATE = 0.55  # known people with consent decisions by email or phone
COOKIE_CONSENT_RATE = 0.25  # personal devices with cookie-banner decisions (anonymous_id)
CONSENT_CHANGE_RATE = 0.15  # decisions later reversed
PRIVACY_REQUEST_RATE = 0.003  # known people filing an erasure or access request
JUNK_CONTACT_RATE = 0.01  # email/phone cells replaced by a placeholder
JUNK_NAME_RATE = 0.005  # name cells replaced by a placeholder
DUPLICATE_ROW_RATE = 0.005  # event rows delivered twice (exact copies)
TIMESTAMP_FORMAT_WEIGHTS = (0.94, 0.04, 0.02)  # ...Z, 'YYYY-MM-DD HH:MM:SS+HH:MM', ...SS.mmmZ
OFFSET_MINUTES = np.array([60, 120, -300, -480, 330, -180], dtype=np.int64)

COUNTRIES = ("US", "GB", "DE")
COUNTRY_WEIGHTS = (0.88, 0.07, 0.05)
CURRENCIES = ("USD", "GBP", "EUR")  # by country
CURRENCY_RATES = np.array([1.0, 0.79, 0.92])  # catalogue prices are USD
CURRENCY_VARIANTS = (("usd", "$", "US$"), ("gbp", "£"), ("eur", "€"))
COUNTRY_SPELLINGS = (("US", "USA", "United States", "us"), ("GB", "UK", "United Kingdom"),
                     ("DE", "Germany", "Deutschland"))
CURRENCY_VARIANT_RATE = 0.03
CODE_CASE_VARIANT_RATE = 0.03  # statuses, tiers, event types written capitalised

FIRST_NAMES = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark",
    "Sandra", "Steven", "Ashley", "Paul", "Emily", "Andrew", "Michelle", "Joshua", "Amanda",
    "Oliver", "Amelia", "Harry", "Isla", "George", "Olivia", "Lukas", "Hannah", "Leon", "Lena",
    "Jürgen", "Zoë", "Mary Ann", "José", "Aisha", "Wei", "Priya", "Mohammed", "Sofia", "Mateo",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Clark",
    "Lewis", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Green", "Baker", "Adams",
    "Evans", "Hughes", "Patel", "Khan", "Müller", "Schmidt", "Schneider", "Fischer", "Weber",
    "O'Brien", "van der Berg", "Nguyen", "Kim", "Chen", "Singh", "Rossi", "Dubois",
)
CITIES = (
    ("New York", "Los Angeles", "Chicago", "Houston", "Phoenix", "Philadelphia", "San Antonio",
     "San Diego", "Dallas", "Austin", "Seattle", "Denver", "Boston", "Portland", "Atlanta"),
    ("London", "Manchester", "Birmingham", "Leeds", "Glasgow", "Bristol", "Edinburgh"),
    ("Berlin", "Hamburg", "München", "Köln", "Frankfurt am Main", "Stuttgart", "Düsseldorf"),
)
EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "aol.com",
                 "btinternet.com", "gmx.de", "web.de", "t-online.de")
EMAIL_DOMAIN_WEIGHTS = np.array([
    [0.42, 0.18, 0.12, 0.12, 0.12, 0.04, 0.00, 0.00, 0.00, 0.00],  # US
    [0.40, 0.10, 0.15, 0.12, 0.08, 0.00, 0.15, 0.00, 0.00, 0.00],  # GB
    [0.30, 0.05, 0.05, 0.08, 0.04, 0.00, 0.00, 0.25, 0.18, 0.05],  # DE
])
WORK_DOMAINS = ("acme-corp.com", "globex.com", "initech.com", "umbrella-inc.com", "hooli.com",
                "vandelay-industries.com")
EMAIL_PATTERN_WEIGHTS = (0.35, 0.20, 0.15, 0.15, 0.15)  # first.last, flast, first_last, ...

# Raw spellings: slot 0 is canonical; rows pick a slot with these weights.
EMAIL_ROW_WEIGHTS = (0.76, 0.10, 0.08, 0.06)  # canonical, Title.Case, '  Title.Case ', UPPER
PHONE_ROW_WEIGHTS = (0.35, 0.30, 0.20, 0.15)  # E.164, then three per-person habitual formats
NAME_ROW_WEIGHTS = (0.86, 0.05, 0.05, 0.04)  # Title, UPPER, lower, '  Title '
PHONE_TEMPLATES = (  # '#' takes the next digit of the 10-digit national number
    ("+1##########", "(###) ###-####", "###.###.####", "###-###-####", "+1 ### ### ####",
     "##########", "1-###-###-####", "+1 (###) ###-####"),
    ("+44##########", "+44 #### ######", "0044 #### ######", "+44-####-######",
     "0044##########", "+44 ### ### ####"),
    ("+49##########", "+49 ### #######", "0049 ### #######", "+49-###-#######",
     "0049##########", "+49 (###) #######"),
)

JUNK_EMAILS = ("test@test.com", "noemail@noemail.com", "N/A", "", "none@none.com")
JUNK_PHONES = ("0000000000", "123456789", "N/A", "", "1111111111")
JUNK_NAMES = ("N/A", "test", "", "xxx")
JUNK_IDS = ("N/A", "null", "")
BAD_TIMESTAMPS = ("2025-13-45", "2025-02-30T10:00:00Z", "not a date")
BAD_NUMBERS = ("12,3x", "abc", "1.2.3")
JUNK_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "segment_identifies": {"email": JUNK_EMAILS, "phone": JUNK_PHONES,
                           "first_name": JUNK_NAMES, "last_name": JUNK_NAMES},
    "crm_contacts": {"email": JUNK_EMAILS, "phone": JUNK_PHONES,
                     "first_name": JUNK_NAMES, "last_name": JUNK_NAMES},
    "shop_orders": {"email": JUNK_EMAILS, "phone": JUNK_PHONES},
    "loyalty_members": {"email": JUNK_EMAILS, "phone": JUNK_PHONES,
                        "first_name": JUNK_NAMES, "last_name": JUNK_NAMES},
    "support_tickets": {"requester_email": JUNK_EMAILS, "requester_phone": JUNK_PHONES},
}
DUPLICATE_SOURCES = frozenset({"segment_identifies", "segment_tracks", "segment_pages",
                               "email_events", "pos_transactions", "shop_orders", "consents"})

CATEGORIES = ("Apparel", "Footwear", "Accessories", "Home", "Beauty", "Electronics")
CATEGORY_NOUNS = (
    ("T-Shirt", "Hoodie", "Jeans", "Jacket", "Dress", "Sweater"),
    ("Sneakers", "Boots", "Sandals", "Loafers", "Running Shoes"),
    ("Backpack", "Wallet", "Sunglasses", "Watch", "Scarf", "Cap"),
    ("Candle", "Throw Blanket", "Mug Set", "Vase", "Cushion"),
    ("Face Cream", "Lip Balm", "Shampoo", "Perfume", "Serum"),
    ("Headphones", "Speaker", "Charger", "Smartwatch", "Earbuds"),
)
CATEGORY_BASE_PRICE = (45.0, 90.0, 35.0, 30.0, 25.0, 120.0)
ADJECTIVES = ("Classic", "Everyday", "Premium", "Organic", "Urban", "Vintage", "Essential",
              "Sport", "Travel", "Studio")
BASE_URL = "https://shop.example.com"
BLOG_POSTS = ("how-to-layer-for-winter", "sneaker-care-guide", "gift-ideas-under-50",
              "our-sustainability-report", "home-office-essentials")
REFERRERS = (None, "https://www.google.com/", "https://www.facebook.com/",
             "https://www.instagram.com/", "https://www.bing.com/", BASE_URL + "/")
REFERRER_WEIGHTS = (0.35, 0.30, 0.08, 0.07, 0.05, 0.15)
URL_SUFFIXES = ("", "?utm_source=newsletter&utm_medium=email", "?utm_source=google&utm_medium=cpc")
URL_SUFFIX_WEIGHTS = (0.90, 0.06, 0.04)
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
KIOSK_USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) StoreKiosk/3.2 Chrome/118.0"
CONSENT_PURPOSES = ("email_marketing", "advertising", "analytics", "personalisation")
CONSENT_PURPOSE_RATES = np.array([0.9, 0.5, 0.6, 0.4])
CONSENT_SOURCES = ("web_form", "preference_center", "checkout", "pos", "crm_import")
SUPPORT_CHANNELS = ("email", "chat", "phone", "web")
SUPPORT_STATUSES = ("solved", "closed", "open", "pending")

PRIME_MULTIPLIER = 2_654_435_761  # prime: x -> (x * P + salt) mod 10^k / 2^k is a bijection


# ---------------------------------------------------------------------------------------------
# Vectorised string building
# ---------------------------------------------------------------------------------------------
def strings_from_matrix(mat: np.ndarray, lengths: np.ndarray | None = None) -> pa.StringArray:
    """Rows of an ASCII byte matrix (each cut to its length) as a string array, without a loop."""
    n, width = mat.shape
    if lengths is None:
        data = np.ascontiguousarray(mat).reshape(-1)
        offsets = np.arange(0, n * width + 1, width, dtype=np.int32)
    else:
        data = mat[np.arange(width) < lengths[:, None]]
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def put_digits(mat: np.ndarray, column: int, values: np.ndarray, width: int) -> None:
    """Write `values` zero-padded to `width` digits into `mat` starting at `column`."""
    v = values.astype(np.int64, copy=True)
    for i in range(width - 1, -1, -1):
        mat[:, column + i] = 48 + v % 10
        v //= 10


def ids(prefix: str, values: np.ndarray, width: int) -> pa.StringArray:
    """`prefix` followed by each value zero-padded to `width` digits."""
    head = np.frombuffer(prefix.encode(), dtype=np.uint8)
    mat = np.empty((len(values), len(head) + width), dtype=np.uint8)
    mat[:, : len(head)] = head
    put_digits(mat, len(head), values, width)
    return strings_from_matrix(mat)


def mix64(values: np.ndarray, salt: int) -> np.ndarray:
    """A bijection on 64-bit integers that looks random (splitmix64 finaliser)."""
    z = values.astype(np.uint64) + np.uint64(salt % 2**64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uuids(values: np.ndarray, salt: int) -> pa.StringArray:
    """UUID-shaped hex ids, unique for distinct values under one salt."""
    hexdigits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    words = (mix64(values, salt), mix64(values, salt ^ 0x5DEECE66D))
    mat = np.empty((len(values), 36), dtype=np.uint8)
    mat[:, [8, 13, 18, 23]] = ord("-")
    positions = [i for i in range(36) if i not in (8, 13, 18, 23)]
    for w, word in enumerate(words):
        for i in range(16):
            nibble = (word >> np.uint64(4 * (15 - i))) & np.uint64(15)
            mat[:, positions[16 * w + i]] = hexdigits[nibble.astype(np.intp)]
    return strings_from_matrix(mat)


def scramble(values: np.ndarray, modulus: int, salt: int) -> np.ndarray:
    """A bijection on [0, modulus) (modulus with prime factors 2, 3, 5 only) that looks random."""
    return (values.astype(np.int64) * PRIME_MULTIPLIER + salt % modulus) % modulus


def cat(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation; a null part makes the result null."""
    return pc.binary_join_element_wise(*parts, "")


def null_where(values: pa.Array, mask: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), values)


def pick(rng: np.random.Generator, choices: Sequence[str | None], n: int,
         weights: Sequence[float] | None = None) -> pa.Array:
    """`n` values drawn from `choices` (with `weights`)."""
    p = None if weights is None else np.asarray(weights) / np.sum(weights)
    return pc.take(pa.array(choices, pa.string()), rng.choice(len(choices), size=n, p=p))


def replace_some(values: pa.Array, rng: np.random.Generator, rate: float,
                 replacements: Sequence[str]) -> pa.Array:
    """Replace a random `rate` share of cells by one of `replacements`."""
    mask = rng.random(len(values)) < rate
    if not mask.any():
        return values
    return pc.if_else(pa.array(mask), pick(rng, replacements, len(values)), values)


def amounts(cents: np.ndarray) -> pa.Array:
    """Integer cents as decimal text: 1234 -> '12.34'."""
    cents = cents.astype(np.int64)
    fraction = np.empty((len(cents), 2), dtype=np.uint8)
    put_digits(fraction, 0, np.abs(cents) % 100, 2)
    whole = pc.cast(pa.array(np.abs(cents) // 100), pa.string())
    sign = pc.if_else(pa.array(cents < 0), "-", "")
    return cat(sign, whole, ".", strings_from_matrix(fraction))


def integers(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values.astype(np.int64)), pa.string())


def civil_from_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month, day of days since 1970-01-01 (proleptic Gregorian)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    return yoe + era * 400 + (month <= 2), month, day


def timestamps(seconds: np.ndarray, rng: np.random.Generator) -> pa.StringArray:
    """ISO-8601 texts of UTC epoch seconds: mostly `...Z`, some with offsets or milliseconds."""
    n = len(seconds)
    kind = rng.choice(3, size=n, p=TIMESTAMP_FORMAT_WEIGHTS)
    offset = np.where(kind == 1, OFFSET_MINUTES[rng.integers(len(OFFSET_MINUTES), size=n)], 0)
    local = seconds.astype(np.int64) + offset * 60
    days, clock = np.divmod(local, DAY)
    year, month, day = civil_from_days(days)
    mat = np.zeros((n, 25), dtype=np.uint8)
    put_digits(mat, 0, year, 4)
    put_digits(mat, 5, month, 2)
    put_digits(mat, 8, day, 2)
    put_digits(mat, 11, clock // 3600, 2)
    put_digits(mat, 14, clock // 60 % 60, 2)
    put_digits(mat, 17, clock % 60, 2)
    mat[:, [4, 7]] = ord("-")
    mat[:, [13, 16]] = ord(":")
    mat[:, 10] = np.where(kind == 1, ord(" "), ord("T"))
    mat[:, 19] = np.select([kind == 0, kind == 1], [ord("Z"), np.where(offset < 0, 45, 43)],
                           ord("."))
    with_offset, with_millis = kind == 1, kind == 2
    off_digits = np.zeros((n, 5), dtype=np.uint8)
    put_digits(off_digits, 0, np.abs(offset) // 60, 2)
    put_digits(off_digits, 3, np.abs(offset) % 60, 2)
    off_digits[:, 2] = ord(":")
    mat[with_offset, 20:25] = off_digits[with_offset]
    millis = np.zeros((n, 4), dtype=np.uint8)
    put_digits(millis, 0, rng.integers(1000, size=n), 3)
    millis[:, 3] = ord("Z")
    mat[with_millis, 20:24] = millis[with_millis]
    lengths = np.array([20, 25, 24], dtype=np.int32)[kind]
    return strings_from_matrix(mat, lengths)


def render(templates: Sequence[str], choice: np.ndarray, digits: np.ndarray) -> pa.StringArray:
    """Format each row's digits with its chosen template ('#' takes the next digit)."""
    width = max(len(t) for t in templates)
    mat = np.zeros((len(choice), width), dtype=np.uint8)
    lengths = np.zeros(len(choice), dtype=np.int32)
    for t, template in enumerate(templates):
        rows = np.flatnonzero(choice == t)
        raw = np.frombuffer(template.encode(), dtype=np.uint8)
        slots = np.flatnonzero(raw == ord("#"))
        block = np.broadcast_to(raw, (len(rows), len(raw))).copy()
        block[:, slots] = digits[rows][:, : len(slots)]
        mat[rows, : len(raw)] = block
        lengths[rows] = len(raw)
    return strings_from_matrix(mat, lengths)


def name_spellings(names: Sequence[str]) -> pa.Array:
    """Slot-major raw spellings of each name: Title, UPPER, lower, padded."""
    slots = (names, [s.upper() for s in names], [s.lower() for s in names],
             [f"  {s} " for s in names])
    return pa.array([s for slot in slots for s in slot], pa.string())


def email_slug(name: str) -> str:
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e", "ë": "e",
                           "ï": "i", " ": "", "'": ""})
    return name.lower().translate(table)


FIRST_SPELLINGS = name_spellings(FIRST_NAMES)
LAST_SPELLINGS = name_spellings(LAST_NAMES)
FIRST_SLUGS = pa.array([email_slug(n) for n in FIRST_NAMES])
LAST_SLUGS = pa.array([email_slug(n) for n in LAST_NAMES])
CITY_NAMES = pa.array([c for cities in CITIES for c in cities])
CITY_OFFSETS = np.cumsum([0] + [len(c) for c in CITIES])


# ---------------------------------------------------------------------------------------------
# World: things shared by every chunk (window, catalogue, stores, kiosks, campaigns)
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# People
# ---------------------------------------------------------------------------------------------
@dataclass
class People:
    """One chunk of the population: identity, spellings and behaviour parameters."""

    n: int
    gidx: np.ndarray
    person_id: pa.Array
    known: np.ndarray
    country: np.ndarray
    first: np.ndarray
    last: np.ndarray
    city: np.ndarray
    email: pa.Array  # canonical, null for anonymous-only people
    email_slots: pa.Array  # slot-major: canonical, Title, padded, UPPER, alt, alt Title
    has_alt: np.ndarray
    has_phone: np.ndarray
    phone: pa.Array  # E.164
    phone_slots: pa.Array  # slot-major: E.164 + three habitual formats
    household_hosts: np.ndarray
    household_partners: np.ndarray
    t0: np.ndarray  # acquisition / first visit, epoch seconds
    registered: np.ndarray
    shop_customer_id: pa.Array
    channel: np.ndarray  # 0 online only, 1 store only, 2 both
    value: np.ndarray  # spend level (gamma, mean 1)
    member: np.ndarray
    loyalty_id: pa.Array
    home_store: np.ndarray
    # personal devices per person, filled in by make_devices
    n_devices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def emails(self, rng: np.random.Generator, owners: np.ndarray, present: float = 1.0,
               alt_share: float | np.ndarray = 0.0) -> pa.Array:
        """Raw email spellings for rows owned by `owners` (null where absent)."""
        n = len(owners)
        slot = rng.choice(4, size=n, p=EMAIL_ROW_WEIGHTS)
        use_alt = self.has_alt[owners] & (rng.random(n) < alt_share)
        slot = np.where(use_alt, 4 + (rng.random(n) < 0.3), slot)
        values = pc.take(self.email_slots, slot * self.n + owners)
        return null_where(values, rng.random(n) >= present)

    def phones(self, rng: np.random.Generator, owners: np.ndarray,
               present: float = 1.0) -> pa.Array:
        n = len(owners)
        slot = rng.choice(4, size=n, p=PHONE_ROW_WEIGHTS)
        values = pc.take(self.phone_slots, slot * self.n + owners)
        return null_where(values, ~self.has_phone[owners] | (rng.random(n) >= present))

    def names(self, rng: np.random.Generator, owners: np.ndarray,
              present: float = 1.0) -> tuple[pa.Array, pa.Array]:
        n = len(owners)
        absent = rng.random(n) >= present
        first = pc.take(FIRST_SPELLINGS, rng.choice(4, size=n, p=NAME_ROW_WEIGHTS)
                        * len(FIRST_NAMES) + self.first[owners])
        last = pc.take(LAST_SPELLINGS, rng.choice(4, size=n, p=NAME_ROW_WEIGHTS)
                       * len(LAST_NAMES) + self.last[owners])
        return null_where(first, absent), null_where(last, absent)


def national_numbers(key: np.ndarray, country: np.ndarray, salt: int) -> np.ndarray:
    """A 10-digit national number per person, unique per key within a country."""
    n = len(key)
    digits = np.zeros((n, 10), dtype=np.uint8)
    us = scramble(key, 800 * 800 * 10_000, salt)
    put_digits(digits, 0, 200 + us // 8_000_000, 3)  # area code 200-999
    put_digits(digits, 3, 200 + us // 10_000 % 800, 3)  # exchange 200-999
    put_digits(digits, 6, us % 10_000, 4)
    gb = country == 1
    gb_digits = np.zeros((n, 10), dtype=np.uint8)
    gb_digits[:, 0] = ord("7")
    put_digits(gb_digits, 1, scramble(key, 10**9, salt), 9)  # mobile 7xxx xxxxxx
    de = country == 2
    de_digits = np.zeros((n, 10), dtype=np.uint8)
    de_number = scramble(key, 3 * 10**7, salt)
    de_digits[:, 0:2] = np.frombuffer(b"15", dtype=np.uint8)
    de_digits[:, 2] = np.frombuffer(b"127", dtype=np.uint8)[de_number // 10**7]
    put_digits(de_digits, 3, de_number % 10**7, 7)  # mobile 15x xxxxxxx
    digits[gb] = gb_digits[gb]
    digits[de] = de_digits[de]
    return digits


def phone_spellings(rng: np.random.Generator, country: np.ndarray,
                    digits: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """E.164 per person and slot-major raw spellings (E.164 + three habitual formats)."""
    n = len(country)
    slots = []
    for slot in range(4):
        spelled = pa.nulls(n, pa.string())
        for c, templates in enumerate(PHONE_TEMPLATES):
            rows = country == c
            choice = np.zeros(n, dtype=np.int64) if slot == 0 else rng.integers(
                1, len(templates), size=n)
            spelled = pc.if_else(pa.array(rows), render(templates, choice, digits), spelled)
        slots.append(spelled)
    return slots[0], pa.concat_arrays(slots)


def make_emails(rng: np.random.Generator, gidx: np.ndarray, first: np.ndarray, last: np.ndarray,
                country: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """Canonical primary and work addresses; unique because each ends with the person number."""
    n = len(gidx)
    first_slug, last_slug = pc.take(FIRST_SLUGS, first), pc.take(LAST_SLUGS, last)
    number = integers(gidx + 1)
    initial = pc.utf8_slice_codeunits(first_slug, 0, 1)
    local = pc.choose(
        pa.array(rng.choice(5, size=n, p=EMAIL_PATTERN_WEIGHTS).astype(np.int8)),
        cat(first_slug, ".", last_slug, number), cat(initial, last_slug, number),
        cat(first_slug, "_", last_slug, number), cat(first_slug, last_slug, number),
        cat(last_slug, ".", first_slug, number),
    )
    domain = np.zeros(n, dtype=np.int64)
    for c in range(len(COUNTRIES)):
        rows = np.flatnonzero(country == c)
        domain[rows] = rng.choice(len(EMAIL_DOMAINS), size=len(rows), p=EMAIL_DOMAIN_WEIGHTS[c])
    primary = cat(local, "@", pc.take(pa.array(EMAIL_DOMAINS), domain))
    work = cat(first_slug, ".", last_slug, number, "@",
               pick(rng, WORK_DOMAINS, n))
    return primary, work


def make_people(world: World, rng: np.random.Generator, first_index: int, n: int) -> People:
    gidx = np.arange(first_index, first_index + n, dtype=np.int64)
    known = rng.random(n) >= ANONYMOUS_ONLY_RATE
    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_WEIGHTS)
    first = rng.integers(len(FIRST_NAMES), size=n)
    last = rng.integers(len(LAST_NAMES), size=n)
    has_phone = known & (rng.random(n) < HAS_PHONE_RATE)

    candidates = np.flatnonzero(has_phone)
    # at least one household per chunk, so that even tiny samples hold a shared phone
    pairs = min(max(1, rng.binomial(len(candidates), HOUSEHOLD_RATE / 2)),
                len(candidates) // 2)
    chosen = rng.choice(candidates, size=2 * pairs, replace=False)
    hosts, partners = chosen[:pairs], chosen[pairs:]
    country[partners] = country[hosts]
    same_surname = rng.random(pairs) < 0.7
    last[partners[same_surname]] = last[hosts[same_surname]]
    phone_key = gidx.copy()
    phone_key[partners] = gidx[hosts]

    city = CITY_OFFSETS[country] + (rng.random(n) * np.diff(CITY_OFFSETS)[country]).astype(int)
    primary, work = make_emails(rng, gidx, first, last, country)
    has_alt = known & (rng.random(n) < ALT_EMAIL_RATE)
    email = null_where(primary, ~known)
    alt = null_where(work, ~has_alt)
    title = pc.utf8_title(email)
    email_slots = pa.concat_arrays([
        email, title, cat("  ", title, " "), pc.utf8_upper(email), alt, pc.utf8_title(alt),
    ])
    phone, phone_slots = phone_spellings(
        rng, country, national_numbers(phone_key, country, world.salt("phone")))
    phone = null_where(phone, ~has_phone)

    registered = known & (rng.random(n) < REGISTERED_RATE)
    channel = rng.choice(3, size=n, p=(0.55, 0.25, 0.20))
    member = known & (rng.random(n) < np.where(channel == 0, LOYALTY_ONLINE_RATE,
                                               LOYALTY_STORE_RATE))
    return People(
        n=n, gidx=gidx, person_id=ids("P", gidx + 1, 9), known=known, country=country,
        first=first, last=last, city=city, email=email, email_slots=email_slots,
        has_alt=has_alt, has_phone=has_phone, phone=phone, phone_slots=phone_slots,
        household_hosts=hosts, household_partners=partners,
        t0=world.start + (rng.random(n) * (world.end - world.start - DAY)).astype(np.int64),
        registered=registered,
        shop_customer_id=null_where(
            ids("cus_", scramble(gidx, 10**9, world.salt("customer")), 9), ~registered),
        channel=channel, value=rng.gamma(4.0, 0.25, size=n), member=member,
        loyalty_id=null_where(ids("LY", scramble(gidx, 10**9, world.salt("loyalty")), 9),
                              ~member),
        home_store=rng.integers(len(world.store_ids), size=n),
    )


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------
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


@dataclass
class Orders:
    """Every purchase of a chunk (online and in store) with its lines."""

    owner: np.ndarray
    time: np.ndarray
    online: np.ndarray
    total_cents: np.ndarray
    currency: np.ndarray
    line_order: np.ndarray
    line_number: np.ndarray
    line_product: np.ndarray
    line_quantity: np.ndarray
    line_price_cents: np.ndarray


def uniform_between(rng: np.random.Generator, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return low + (rng.random(len(low)) * np.maximum(high - low, 0)).astype(np.int64)


def rank_within(counts: np.ndarray) -> np.ndarray:
    """0, 1, ... within each run of a `np.repeat(..., counts)`."""
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(int(counts.sum())) - starts


def make_orders(world: World, rng: np.random.Generator, people: People) -> Orders:
    """Buy-till-you-die purchases: gamma purchase rates, exponential lifetimes (Pareto/NBD)."""
    buyers = np.flatnonzero(people.known & (rng.random(people.n) < BUYER_RATE))
    rate = rng.gamma(0.9, 2.0, size=len(buyers))  # purchases per year while alive
    dropout = rng.gamma(1.0, 0.6, size=len(buyers))  # deaths per year
    t0 = people.t0[buyers]
    alive_until = np.minimum(world.end, t0 + rng.exponential(1.0 / dropout) * YEAR)
    repeat = np.minimum(rng.poisson(rate * (alive_until - t0) / YEAR), 60)
    owner = np.repeat(buyers, 1 + repeat)
    first = rank_within(1 + repeat) == 0
    time = np.where(first, people.t0[owner],
                    uniform_between(rng, people.t0[owner], np.repeat(alive_until, 1 + repeat)))
    time = time + rng.integers(0, 3600, size=len(owner))
    time = np.minimum(time, world.end)
    channel = people.channel[owner]
    online = (channel == 0) | ((channel == 2) & (rng.random(len(owner)) < 0.5))

    n_lines = 1 + np.minimum(rng.poisson(0.8 * people.value[owner]), 7)
    line_order = np.repeat(np.arange(len(owner)), n_lines)
    product = rng.choice(len(world.catalogue.price_cents), size=len(line_order),
                         p=world.catalogue.popularity)
    quantity = rng.choice([1, 2, 3], size=len(line_order), p=(0.8, 0.15, 0.05))
    currency = people.country[owner]
    discount = np.where(rng.random(len(line_order)) < 0.1, 0.8, 1.0)
    price = np.round(world.catalogue.price_cents[product] * CURRENCY_RATES[currency[line_order]]
                     * discount).astype(np.int64)
    total = np.bincount(line_order, weights=price * quantity, minlength=len(owner))
    return Orders(owner=owner, time=time, online=online, total_cents=total.astype(np.int64),
                  currency=currency, line_order=line_order, line_number=rank_within(n_lines) + 1,
                  line_product=product, line_quantity=quantity, line_price_cents=price)


def currency_texts(rng: np.random.Generator, currency: np.ndarray) -> pa.Array:
    """ISO codes, with a few lower-case codes and symbols as exports write them."""
    n = len(currency)
    values = pc.take(pa.array(CURRENCIES), currency)
    variants = pa.array([v for vs in CURRENCY_VARIANTS for v in vs])
    offsets = np.cumsum([0] + [len(v) for v in CURRENCY_VARIANTS])
    sizes = np.diff(offsets)[currency]
    variant = pc.take(variants, offsets[currency] + (rng.random(n) * sizes).astype(int))
    return pc.if_else(pa.array(rng.random(n) < CURRENCY_VARIANT_RATE), variant, values)


def codes(rng: np.random.Generator, choices: Sequence[str], n: int,
          weights: Sequence[float] | None = None) -> pa.Array:
    """Lower-case category codes, a few written Capitalised."""
    values = pick(rng, choices, n, weights)
    return pc.if_else(pa.array(rng.random(n) < CODE_CASE_VARIANT_RATE),
                      pc.utf8_capitalize(values), values)


def shop_batches(world: World, rng: np.random.Generator, people: People, orders: Orders,
                 counters: Counters) -> tuple[Batch, Batch, pa.Array, pa.Array]:
    """shop_orders and shop_order_lines; also each order's id and its customer id (or null)."""
    online = np.flatnonzero(orders.online)
    owner = orders.owner[online]
    n = len(online)
    order_id = ids("ORD-", counters.take("shop_orders", n) + 1, 9)
    logged_in = people.registered[owner] & (rng.random(n) < LOGGED_IN_ORDER_RATE)
    customer_id = null_where(pc.take(people.shop_customer_id, owner), ~logged_in)
    # guests: a few exports write a placeholder instead of leaving the customer id empty
    guest_placeholder = ~logged_in & (rng.random(n) < 0.05)
    shop_customer_id = pc.if_else(pa.array(guest_placeholder), pick(rng, JUNK_IDS, n),
                                  customer_id)
    orders_batch = Batch(
        columns={
            "order_id": order_id,
            "shop_customer_id": shop_customer_id,
            "email": people.emails(rng, owner, present=0.99, alt_share=0.3),
            "phone": people.phones(rng, owner, present=0.55),
            "ordered_at": timestamps(orders.time[online], rng),
            "total_amount": amounts(orders.total_cents[online]),
            "currency": currency_texts(rng, orders.currency[online]),
            "status": codes(rng, ("completed", "cancelled", "refunded"), n, (0.9, 0.06, 0.04)),
        },
        when=orders.time[online], owners=owner,
    )
    position = np.full(len(orders.owner), -1)
    position[online] = np.arange(n)
    lines = np.flatnonzero(orders.online[orders.line_order])
    line_owner_order = position[orders.line_order[lines]]
    line_order_id = pc.take(order_id, line_owner_order)
    product = orders.line_product[lines]
    lines_batch = Batch(
        columns={
            "order_id": line_order_id,
            "line_id": cat(line_order_id, "-", integers(orders.line_number[lines])),
            "sku": pc.take(world.catalogue.sku, product),
            "product_name": pc.take(world.catalogue.name, product),
            "category": pc.take(world.catalogue.category, product),
            "quantity": integers(orders.line_quantity[lines]),
            "unit_price": amounts(orders.line_price_cents[lines]),
        },
        when=orders.time[orders.line_order[lines]], owners=None,
    )
    return orders_batch, lines_batch, order_id, customer_id


def pos_batch(world: World, rng: np.random.Generator, people: People, orders: Orders,
              counters: Counters) -> Batch:
    store = np.flatnonzero(~orders.online)
    owner = orders.owner[store]
    n = len(store)
    scanned = people.member[owner] & (rng.random(n) < CARD_SCANNED_RATE)
    store_index = np.where(rng.random(n) < 0.85, people.home_store[owner],
                           rng.integers(len(world.store_ids), size=n))
    return Batch(
        columns={
            "transaction_id": ids("TX", counters.take("pos_transactions", n) + 1, 10),
            "store_id": pc.take(world.store_ids, store_index),
            "loyalty_id": null_where(pc.take(people.loyalty_id, owner), ~scanned),
            "transacted_at": timestamps(orders.time[store], rng),
            "total_amount": amounts(orders.total_cents[store]),
            "currency": currency_texts(rng, orders.currency[store]),
        },
        when=orders.time[store], owners=owner,
    )


def loyalty_batch(world: World, rng: np.random.Generator, people: People) -> Batch:
    members = np.flatnonzero(people.member)
    n = len(members)
    joined = np.maximum(people.t0[members] - rng.integers(0, 90 * DAY, size=n), world.start - YEAR)
    value = people.value[members]
    tier = np.select([value > 1.6, value > 1.1], [2, 1], 0)
    tier_text = pc.take(pa.array(("bronze", "silver", "gold")), tier)
    tier_text = pc.if_else(pa.array(rng.random(n) < CODE_CASE_VARIANT_RATE),
                           pc.utf8_capitalize(tier_text), tier_text)
    first, last = people.names(rng, members, present=0.97)
    return Batch(
        columns={
            "loyalty_id": pc.take(people.loyalty_id, members),
            "email": people.emails(rng, members, present=0.92),
            "phone": people.phones(rng, members, present=0.9),
            "first_name": first, "last_name": last, "tier": tier_text,
            "joined_at": timestamps(joined.astype(np.int64), rng),
        },
        when=joined.astype(np.int64), owners=members,
    )


@dataclass
class Devices:
    """Browsers of a chunk (personal devices first, then kiosk visits) and their behaviour."""

    owner: np.ndarray
    anonymous_id: pa.Array
    start: np.ndarray
    end: np.ndarray
    identifies: np.ndarray
    identify_time: np.ndarray
    pages: np.ndarray
    kiosk: np.ndarray
    user_agent: pa.Array
    ip: pa.Array
    personal_first: np.ndarray  # per person: index of their first personal device
    personal_count: np.ndarray  # per person: number of personal devices


def make_devices(world: World, rng: np.random.Generator, people: People,
                 counters: Counters) -> Devices:
    web = ~people.known | (rng.random(people.n) < WEB_RATE)
    web_people = np.flatnonzero(web)
    known = people.known[web_people]
    count = np.where(known, rng.choice([1, 2, 3], size=len(web_people), p=(0.55, 0.33, 0.12)),
                     rng.choice([1, 2], size=len(web_people), p=(0.85, 0.15)))
    owner = np.repeat(web_people, count)
    n = len(owner)
    own_known = people.known[owner]
    t0 = people.t0[owner]
    start = np.where(rank_within(count) == 0, t0, uniform_between(rng, t0, np.full(n, world.end)))
    end = np.where(own_known, world.end,
                   np.minimum(world.end, start + rng.exponential(7 * DAY, size=n).astype(np.int64)))
    identifies = own_known & (rng.random(n) < DEVICE_IDENTIFY_RATE)
    identify_time = start + (rng.random(n) * (end - start) * 0.5).astype(np.int64)
    pages = 1 + rng.poisson(np.where(own_known, rng.gamma(1.5, 4.0, size=n), 1.5))
    anonymous_id = uuids(counters.take("devices", n), world.salt("device"))
    ip = cat(integers(rng.integers(24, 224, size=n)), ".", integers(rng.integers(256, size=n)),
             ".", integers(rng.integers(256, size=n)), ".", integers(rng.integers(1, 255, size=n)))
    user_agent = pick(rng, USER_AGENTS, n, (0.35, 0.2, 0.25, 0.15, 0.05))

    personal_first = np.full(people.n, -1)
    personal_first[web_people] = np.cumsum(count) - count
    personal_count = np.zeros(people.n, dtype=np.int64)
    personal_count[web_people] = count
    people.n_devices = personal_count

    users = np.flatnonzero(people.known & web & (rng.random(people.n) < KIOSK_USER_RATE))
    visits = 1 + (rng.random(len(users)) < 0.2)
    k_owner = np.repeat(users, visits)
    k = len(k_owner)
    kiosk = rng.integers(len(world.kiosk_ids), size=k)
    k_start = uniform_between(rng, people.t0[k_owner], np.full(k, world.end - 3600))
    return Devices(
        owner=np.concatenate([owner, k_owner]),
        anonymous_id=pa.concat_arrays([anonymous_id, pc.take(world.kiosk_ids, kiosk)]),
        start=np.concatenate([start, k_start]),
        end=np.concatenate([end, k_start + 20 * 60]),
        identifies=np.concatenate([identifies, np.ones(k, dtype=bool)]),
        identify_time=np.concatenate([identify_time, k_start + 30]),
        pages=np.concatenate([pages, 1 + rng.poisson(2.0, size=k)]),
        kiosk=np.concatenate([np.zeros(n, dtype=bool), np.ones(k, dtype=bool)]),
        user_agent=pa.concat_arrays([user_agent, pa.array([KIOSK_USER_AGENT] * k, pa.string())]),
        ip=pa.concat_arrays([ip, pc.take(world.kiosk_ips, kiosk)]),
        personal_first=personal_first, personal_count=personal_count,
    )


def received(rng: np.random.Generator, world: World, when: np.ndarray) -> pa.Array:
    return timestamps(np.minimum(when + rng.integers(0, 4, size=len(when)), world.end), rng)


def web_user_ids(people: People, devices: Devices, device: np.ndarray,
                 when: np.ndarray) -> pa.Array:
    """Segment user_id (the shop customer id) once a registered person has identified."""
    owner = devices.owner[device]
    signed_in = devices.identifies[device] & (when >= devices.identify_time[device])
    return null_where(pc.take(people.shop_customer_id, owner), ~signed_in)


def pages_batch(world: World, rng: np.random.Generator, people: People, devices: Devices,
                counters: Counters) -> tuple[Batch, np.ndarray, np.ndarray, np.ndarray]:
    """segment_pages; also device, time and catalogue page of each view (for tracks)."""
    device = np.repeat(np.arange(len(devices.owner)), devices.pages)
    n = len(device)
    when = uniform_between(rng, devices.start[device], devices.end[device])
    page = rng.choice(len(world.catalogue.page_weights), size=n, p=world.catalogue.page_weights)
    path = pc.take(world.catalogue.page_path, page)
    batch = Batch(
        columns={
            "id": uuids(counters.take("segment_pages", n), world.salt("pages")),
            "anonymous_id": pc.take(devices.anonymous_id, device),
            "user_id": web_user_ids(people, devices, device, when),
            "timestamp": timestamps(when, rng),
            "url": cat(BASE_URL, path, pick(rng, URL_SUFFIXES, n, URL_SUFFIX_WEIGHTS)),
            "path": path,
            "referrer": pick(rng, REFERRERS, n, REFERRER_WEIGHTS),
            "title": pc.take(world.catalogue.page_title, page),
            "received_at": received(rng, world, when),
        },
        when=when, owners=devices.owner[device],
    )
    return batch, device, when, page


def tracks_batch(world: World, rng: np.random.Generator, people: People, devices: Devices,
                 views: tuple[np.ndarray, np.ndarray, np.ndarray], orders: Orders,
                 order_ids: pa.Array, order_customer_ids: pa.Array,
                 counters: Counters) -> Batch:
    """Product Viewed/Added from product pages; Checkout Started/Order Completed per web order."""
    view_device, view_time, page = views
    product = world.catalogue.page_product[page]
    viewed = np.flatnonzero((product >= 0) & (rng.random(len(page)) < 0.5))
    added = viewed[rng.random(len(viewed)) < 0.2]

    online = np.flatnonzero(orders.online)
    owner = orders.owner[online]
    on_web = np.flatnonzero(devices.personal_count[owner] > 0)
    o_device = (devices.personal_first[owner[on_web]]
                + (rng.random(len(on_web)) * devices.personal_count[owner[on_web]]).astype(int))
    o_time = orders.time[online[on_web]]
    o_ids = pc.take(order_ids, on_web)
    o_users = pc.take(order_customer_ids, on_web)
    o_revenue = amounts(orders.total_cents[online[on_web]])
    checkout_time = np.maximum(o_time - rng.integers(60, 900, size=len(on_web)), world.start)

    device = np.concatenate([view_device[viewed], view_device[added], o_device, o_device])
    when = np.concatenate([view_time[viewed] + 2, view_time[added] + 40, checkout_time, o_time])
    when = np.minimum(when, world.end)
    n_view, n_add, n_ord = len(viewed), len(added), len(on_web)
    event = pa.concat_arrays([
        pa.array(["Product Viewed"] * n_view, pa.string()),
        pa.array(["Product Added"] * n_add, pa.string()),
        pa.array(["Checkout Started"] * n_ord, pa.string()),
        pa.array(["Order Completed"] * n_ord, pa.string()),
    ])
    item = np.concatenate([product[viewed], product[added]])
    none = pa.nulls(2 * n_ord, pa.string())
    sku = pa.concat_arrays([pc.take(world.catalogue.sku, item), none])
    user_id = pa.concat_arrays([
        web_user_ids(people, devices, device[: n_view + n_add], when[: n_view + n_add]),
        o_users, o_users,
    ])
    quantity = integers(rng.choice([1, 2], size=n_add, p=(0.85, 0.15)))
    return Batch(
        columns={
            "id": uuids(counters.take("segment_tracks", len(device)), world.salt("tracks")),
            "anonymous_id": pc.take(devices.anonymous_id, device),
            "user_id": user_id,
            "event": event,
            "timestamp": timestamps(when, rng),
            "product_id": sku,
            "revenue": pa.concat_arrays([pa.nulls(n_view + n_add + n_ord, pa.string()),
                                         o_revenue]),
            "order_id": pa.concat_arrays([pa.nulls(n_view + n_add + n_ord, pa.string()),
                                          o_ids]),
            "received_at": received(rng, world, when),
            "category": pa.concat_arrays([pc.take(world.catalogue.category, item), none]),
            "price": pa.concat_arrays([
                amounts(world.catalogue.price_cents[item]), none]),
            "quantity": pa.concat_arrays([pa.nulls(n_view, pa.string()), quantity, none]),
        },
        when=when, owners=devices.owner[device],
    )


def identifies_batch(world: World, rng: np.random.Generator, people: People, devices: Devices,
                     counters: Counters) -> Batch:
    identifying = np.flatnonzero(devices.identifies)
    calls = 1 + np.where(devices.kiosk[identifying], 0, rng.poisson(0.7, size=len(identifying)))
    device = np.repeat(identifying, calls)
    n = len(device)
    first_call = rank_within(calls) == 0
    when = np.where(first_call, devices.identify_time[device],
                    uniform_between(rng, devices.identify_time[device], devices.end[device]))
    owner = devices.owner[device]
    first, last = people.names(rng, owner, present=0.6)
    sent = np.maximum(when - rng.integers(0, 3, size=n), world.start)
    return Batch(
        columns={
            "id": uuids(counters.take("segment_identifies", n), world.salt("identifies")),
            "anonymous_id": pc.take(devices.anonymous_id, device),
            "user_id": pc.take(people.shop_customer_id, owner),
            "timestamp": timestamps(when, rng),
            "email": people.emails(rng, owner, present=0.93, alt_share=0.1),
            "phone": people.phones(rng, owner, present=0.35),
            "first_name": first, "last_name": last,
            "received_at": received(rng, world, when),
            "sent_at": timestamps(sent, rng),
            "context_ip": pc.take(devices.ip, device),
            "context_user_agent": pc.take(devices.user_agent, device),
        },
        when=when, owners=owner,
    )


def crm_batch(world: World, rng: np.random.Generator, people: People,
              counters: Counters) -> Batch:
    """Contacts (a few people twice) with one row per version (updated_at)."""
    in_crm = np.flatnonzero(people.known & (rng.random(people.n) < CRM_RATE))
    twice = rng.random(len(in_crm)) < CRM_DUPLICATE_RATE
    contact_owner = np.repeat(in_crm, 1 + twice)
    is_second = rank_within(1 + twice) == 1
    c = len(contact_owner)
    contact_id = ids("003", counters.take("crm_contacts", c) + 1, 12)
    created = np.maximum(people.t0[contact_owner] - rng.integers(0, 60 * DAY, size=c),
                         world.start - YEAR)
    created = np.where(is_second, uniform_between(rng, created, np.full(c, world.end)), created)
    versions = 1 + (rng.random(c) < 0.25) + (rng.random(c) < 0.05)
    contact = np.repeat(np.arange(c), versions)
    version = rank_within(versions)
    n = len(contact)
    owner = contact_owner[contact]
    gaps = np.where(version == 0, 0, rng.integers(DAY, 120 * DAY, size=n))
    updated = np.minimum(created[contact] + np.cumsum(gaps) - np.repeat(
        np.cumsum(gaps)[np.cumsum(versions) - versions], versions), world.end)
    spellings = pa.array([s for group in COUNTRY_SPELLINGS for s in group])
    offsets = np.cumsum([0] + [len(g) for g in COUNTRY_SPELLINGS])
    country = people.country[owner]
    country_text = pc.take(spellings, offsets[country] + (
        rng.random(n) * np.diff(offsets)[country]).astype(int))
    moved = rng.random(n) < np.where(version > 0, 0.05, 0.0)
    city = np.where(moved, CITY_OFFSETS[country] + (
        rng.random(n) * np.diff(CITY_OFFSETS)[country]).astype(int), people.city[owner])
    city_text = pc.take(CITY_NAMES, city)
    city_text = pc.if_else(pa.array(rng.random(n) < 0.05), pc.utf8_lower(city_text), city_text)
    first, last = people.names(rng, owner, present=0.99)
    return Batch(
        columns={
            "contact_id": pc.take(contact_id, contact),
            "email": people.emails(rng, owner, present=0.95,
                                   alt_share=np.where(is_second[contact], 0.5, 0.05)),
            "phone": people.phones(rng, owner, present=0.7),
            "first_name": first, "last_name": last,
            "city": null_where(city_text, rng.random(n) < 0.1),
            "country": null_where(country_text, rng.random(n) < 0.05),
            "created_at": timestamps(created[contact], rng),
            "updated_at": timestamps(updated, rng),
        },
        when=updated, owners=owner, truth_rows=np.flatnonzero(version == 0),
    )


def email_events_batch(world: World, rng: np.random.Generator, people: People,
                       counters: Counters) -> Batch:
    """Newsletter sends and reactions; nobody is sent anything after unsubscribing."""
    subscribers = np.flatnonzero(people.known & (rng.random(people.n) < EMAIL_SUBSCRIBER_RATE))
    subscribed = people.t0[subscribers] - rng.integers(0, 60 * DAY, size=len(subscribers))
    sent = ((world.campaign_times[None, :] >= subscribed[:, None])
            & (rng.random((len(subscribers), len(world.campaign_times))) < CAMPAIGN_RECEIVE_RATE))
    sub, campaign = np.nonzero(sent)
    n = len(sub)
    delivered_at = world.campaign_times[campaign] + rng.integers(0, 1800, size=n)
    bounced = rng.random(n) < 0.02
    open_rate = rng.beta(1.5, 3.0, size=len(subscribers))[sub]
    opened = ~bounced & (rng.random(n) < open_rate)
    open_at = delivered_at + rng.exponential(6 * 3600, size=n).astype(np.int64)
    reaction_at = open_at + rng.integers(60, 3 * 3600, size=n)
    unsubscribed = opened & (rng.random(n) < 0.01)
    left_at = np.full(len(subscribers), np.iinfo(np.int64).max)
    np.minimum.at(left_at, sub[unsubscribed], reaction_at[unsubscribed])
    kept = world.campaign_times[campaign] < left_at[sub]
    events = [  # (event type, sends it happened to, when)
        ("delivered", kept & ~bounced, delivered_at),
        ("bounce", kept & bounced, delivered_at + 5),
        ("open", kept & opened, open_at),
        ("open", kept & opened & (rng.random(n) < 0.2), reaction_at),
        ("click", kept & opened & (rng.random(n) < 0.25), reaction_at + 20),
        ("unsubscribe", kept & unsubscribed, reaction_at),
        ("spam_report", kept & ~bounced & (rng.random(n) < 0.001), reaction_at),
    ]
    send = np.concatenate([np.flatnonzero(mask) for _, mask, _ in events])
    when = np.minimum(np.concatenate([at[mask] for _, mask, at in events]), world.end)
    type_names = [name for name, _, _ in events]
    type_code = np.repeat(np.arange(len(events)), [int(mask.sum()) for _, mask, _ in events])
    event_type = pc.take(pa.array(type_names), type_code)
    event_type = pc.if_else(pa.array(rng.random(len(send)) < CODE_CASE_VARIANT_RATE),
                            pc.utf8_upper(event_type), event_type)
    address = people.emails(rng, subscribers, alt_share=0.3)  # one spelling per subscriber
    return Batch(
        columns={
            "event_id": ids("ev_", counters.take("email_events", len(send)) + 1, 11),
            "email": pc.take(address, sub[send]),
            "campaign_id": pc.take(world.campaign_ids, campaign[send]),
            "event_type": event_type,
            "occurred_at": timestamps(when, rng),
        },
        when=when, owners=subscribers[sub[send]],
    )


def support_batch(world: World, rng: np.random.Generator, people: People,
                  counters: Counters) -> Batch:
    requesters = np.flatnonzero(people.known & (rng.random(people.n) < SUPPORT_RATE))
    tickets = 1 + rng.poisson(0.4, size=len(requesters))
    owner = np.repeat(requesters, tickets)
    n = len(owner)
    created = uniform_between(rng, people.t0[owner], np.full(n, world.end))
    channel = rng.choice(4, size=n, p=(0.4, 0.25, 0.2, 0.15))
    status = rng.choice(4, size=n, p=(0.75, 0.08, 0.09, 0.08))
    solved = status <= 1
    solved_at = np.minimum(created + rng.exponential(DAY, size=n).astype(np.int64) + 600,
                           world.end)
    rated = solved & (rng.random(n) < 0.5)
    csat = rng.choice([1, 2, 3, 4, 5], size=n, p=(0.06, 0.06, 0.12, 0.3, 0.46))
    by_phone = channel == 2
    email_present = np.where(by_phone, 0.6, 0.97)
    return Batch(
        columns={
            "ticket_id": integers(100_000 + counters.take("support_tickets", n)),
            "requester_email": null_where(people.emails(rng, owner, alt_share=0.3),
                                          rng.random(n) >= email_present),
            "requester_phone": null_where(people.phones(rng, owner),
                                          ~by_phone & (rng.random(n) >= 0.2)),
            "channel": pc.take(pa.array(SUPPORT_CHANNELS), channel),
            "status": pc.take(pa.array(SUPPORT_STATUSES), status),
            "created_at": timestamps(created, rng),
            "solved_at": null_where(timestamps(solved_at, rng), ~solved),
            "csat": null_where(integers(csat), ~rated),
        },
        when=created, owners=owner,
    )


def consents_batch(world: World, rng: np.random.Generator, people: People, devices: Devices,
                   counters: Counters) -> Batch:
    """Decisions by email/phone per purpose, cookie-banner decisions by anonymous_id."""
    deciders = np.flatnonzero(people.known & (rng.random(people.n) < CONSENT_RATE))
    by_phone = people.has_phone[deciders] & (rng.random(len(deciders)) < 0.25)
    chosen = rng.random((len(deciders), len(CONSENT_PURPOSES))) < CONSENT_PURPOSE_RATES
    who, purpose = np.nonzero(chosen)
    owner = deciders[who]
    phone_row = by_phone[who]
    m = len(owner)
    first_at = uniform_between(rng, people.t0[owner], np.full(m, world.end))
    changed = rng.random(m) < CONSENT_CHANGE_RATE
    granted = rng.random(m) < 0.85
    identifier = pc.if_else(pa.array(phone_row), people.phones(rng, owner),
                            people.emails(rng, owner))
    identifier_type = pc.if_else(pa.array(phone_row), "phone", "email")

    personal = np.flatnonzero(~devices.kiosk
                              & (rng.random(len(devices.owner)) < COOKIE_CONSENT_RATE))
    cookie_purposes = np.array([1, 2, 3])
    d_device = np.repeat(personal, len(cookie_purposes))
    d_purpose = np.tile(cookie_purposes, len(personal))
    d = len(d_device)
    d_first = devices.start[d_device] + rng.integers(1, 120, size=d)
    d_changed = rng.random(d) < CONSENT_CHANGE_RATE / 2

    rows_owner = np.concatenate([owner, devices.owner[d_device]])
    rows_purpose = np.concatenate([purpose, d_purpose])
    rows_first = np.concatenate([first_at, d_first])
    rows_granted = np.concatenate([granted, rng.random(d) < 0.7])
    rows_changed = np.concatenate([changed, d_changed])
    rows_identifier = pa.concat_arrays([identifier, pc.take(devices.anonymous_id, d_device)])
    rows_type = pa.concat_arrays([identifier_type, pa.array(["anonymous_id"] * d, pa.string())])
    rows_source = pa.concat_arrays([pick(rng, CONSENT_SOURCES, m, (0.4, 0.2, 0.2, 0.1, 0.1)),
                                    pa.array(["cookie_banner"] * d, pa.string())])
    later = np.flatnonzero(rows_changed)
    decision = np.concatenate([np.arange(len(rows_owner)), later])
    when = np.concatenate([
        rows_first, uniform_between(rng, rows_first[later], np.full(len(later), world.end))])
    granted_now = np.concatenate([rows_granted, ~rows_granted[later]])
    later_source = pc.if_else(pa.array(rng.random(len(later)) < 0.5), "preference_center",
                              pc.take(rows_source, later))
    n = len(decision)
    return Batch(
        columns={
            "consent_id": ids("cns-", counters.take("consents", n) + 1, 10),
            "identifier_type": pc.take(rows_type, decision),
            "identifier_value": pc.take(rows_identifier, decision),
            "purpose": pc.take(pa.array(CONSENT_PURPOSES), rows_purpose[decision]),
            "status": pc.take(pa.array(["denied", "granted"]), granted_now.astype(int)),
            "occurred_at": timestamps(when, rng),
            "source": pa.concat_arrays([rows_source, later_source]),
        },
        when=when, owners=rows_owner[decision],
    )


def privacy_batch(world: World, rng: np.random.Generator, people: People,
                  counters: Counters) -> Batch:
    known = np.flatnonzero(people.known)
    count = max(1, rng.binomial(len(known), PRIVACY_REQUEST_RATE)) if len(known) else 0
    owner = np.sort(rng.choice(known, size=count, replace=False))
    kind = rng.choice(3, size=count, p=(0.75, 0.15, 0.10))
    kind = np.where((kind == 1) & ~people.has_phone[owner], 0, kind)
    kind = np.where((kind == 2) & ~people.registered[owner], 0, kind)
    value = pc.choose(pa.array(kind.astype(np.int8)), people.emails(rng, owner),
                      people.phones(rng, owner), pc.take(people.shop_customer_id, owner))
    when = uniform_between(rng, np.full(count, world.end - 180 * DAY), np.full(count, world.end))
    return Batch(
        columns={
            "request_id": ids("dsr-", counters.take("privacy_requests", count) + 1, 7),
            "identifier_type": pc.take(pa.array(["email", "phone", "user_id"]), kind),
            "identifier_value": value,
            "request_type": pick(rng, ("erasure", "access"), count, (0.55, 0.45)),
            "received_at": timestamps(when, rng),
        },
        when=when, owners=owner,
    )


def chunk_batches(world: World, rng: np.random.Generator, people: People,
                  counters: Counters) -> dict[str, Batch]:
    orders = make_orders(world, rng, people)
    shop_orders, shop_lines, order_ids, order_customers = shop_batches(
        world, rng, people, orders, counters)
    devices = make_devices(world, rng, people, counters)
    pages, view_device, view_time, view_page = pages_batch(world, rng, people, devices, counters)
    return {
        "segment_identifies": identifies_batch(world, rng, people, devices, counters),
        "segment_tracks": tracks_batch(world, rng, people, devices,
                                       (view_device, view_time, view_page), orders, order_ids,
                                       order_customers, counters),
        "segment_pages": pages,
        "crm_contacts": crm_batch(world, rng, people, counters),
        "shop_orders": shop_orders,
        "shop_order_lines": shop_lines,
        "pos_transactions": pos_batch(world, rng, people, orders, counters),
        "loyalty_members": loyalty_batch(world, rng, people),
        "email_events": email_events_batch(world, rng, people, counters),
        "support_tickets": support_batch(world, rng, people, counters),
        "consents": consents_batch(world, rng, people, devices, counters),
        "privacy_requests": privacy_batch(world, rng, people, counters),
    }


# ---------------------------------------------------------------------------------------------
# Dirt common to every source, truth, and writing
# ---------------------------------------------------------------------------------------------
def output_columns(source: LandingSource) -> tuple[str, ...]:
    return source.known_columns


def finish(source: LandingSource, batch: Batch, rng: np.random.Generator,
           bad_row_rate: float) -> pa.Table:
    """The batch as a table with junk placeholders, unparseable values, duplicate deliveries,
    in time order."""
    columns = dict(batch.columns)
    unknown = set(columns) - set(output_columns(source))
    if unknown:
        raise ValueError(f"{source.name}: columns outside the landing contract: {sorted(unknown)}")
    for name, junk in JUNK_COLUMNS.get(source.name, {}).items():
        rate = JUNK_NAME_RATE if name.endswith("_name") else JUNK_CONTACT_RATE
        columns[name] = replace_some(columns[name], rng, rate, junk)
    typed = [c for c in output_columns(source) if source.column_type(c) != "text"
             and c in columns]
    bad = rng.random(batch.n) < bad_row_rate
    target = rng.integers(max(len(typed), 1), size=batch.n)
    for t, name in enumerate(typed):
        rows = bad & (target == t)
        if rows.any():
            values = BAD_TIMESTAMPS if source.column_type(name) == "timestamp" else BAD_NUMBERS
            columns[name] = pc.if_else(pa.array(rows), pick(rng, values, batch.n), columns[name])
    schema = pa.schema([(c, pa.string()) for c in output_columns(source)])
    table = pa.table([columns.get(c, pa.nulls(batch.n, pa.string())) for c in schema.names],
                     schema=schema)
    rows = np.arange(batch.n)
    if source.name in DUPLICATE_SOURCES:
        rows = np.concatenate([rows, np.flatnonzero(rng.random(batch.n) < DUPLICATE_ROW_RATE)])
    rows = rows[np.argsort(batch.when[rows], kind="stable")]
    return table.take(rows)


TRUTH_SCHEMA = pa.schema([("source", pa.string()), ("source_record_id", pa.string()),
                          ("person_id", pa.string())])


def truth_table(source: LandingSource, batch: Batch, people: People) -> pa.Table | None:
    """One row per record of the source that carries a person."""
    if batch.owners is None:
        return None
    rows = np.arange(batch.n) if batch.truth_rows is None else batch.truth_rows
    return pa.table([
        pa.array([source.name] * len(rows), pa.string()),
        pc.take(batch.columns[source.record_id], rows),
        pc.take(people.person_id, batch.owners[rows]),
    ], schema=TRUTH_SCHEMA)


def people_table(world: World, people: People) -> pa.Table:
    country = pc.take(pa.array(COUNTRIES), people.country)
    shared = np.zeros(people.n, dtype=bool)
    shared[people.household_hosts] = True
    shared[people.household_partners] = True
    return pa.table({
        "person_id": people.person_id,
        "is_known": pa.array(people.known),
        "email": people.email,
        "alt_email": pc.take(people.email_slots, 4 * people.n + np.arange(people.n)),
        "phone": people.phone,
        "phone_shared_with_household": pa.array(shared),
        "first_name": pc.take(pa.array(FIRST_NAMES), people.first),
        "last_name": pc.take(pa.array(LAST_NAMES), people.last),
        "country": null_where(country, ~people.known),
        "city": null_where(pc.take(CITY_NAMES, people.city), ~people.known),
        "shop_customer_id": people.shop_customer_id,
        "loyalty_id": people.loyalty_id,
        "personal_devices": pa.array(people.n_devices.astype(np.int32)),
        "first_seen_at": pc.cast(pa.array(people.t0.astype("datetime64[s]")),
                                 pa.timestamp("s", tz="UTC")),
    })


class Output:
    """Append-only writers: one landing file per source plus the ground-truth files."""

    def __init__(self, out: Path, fmt: str) -> None:
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"format must be csv or parquet, not {fmt!r}")
        self.fmt = fmt
        self.rows = {s.name: 0 for s in SOURCES}
        self.truth_dir = out / "_ground_truth"
        self.truth_dir.mkdir(parents=True, exist_ok=True)
        self.schemas = {s.name: pa.schema([(c, pa.string()) for c in output_columns(s)])
                        for s in SOURCES}
        # CSV: pyarrow's CSVWriter keeps its last table alive, so append with write_csv instead.
        self.files: dict[str, pa.NativeFile] = {}
        self.parquet: dict[str, pq.ParquetWriter] = {}
        for source in SOURCES:
            for suffix in ("csv", "parquet"):  # never leave a stale twin in the other format
                (out / f"{source.name}.{suffix}").unlink(missing_ok=True)
            path = out / f"{source.name}.{fmt}"
            if fmt == "csv":
                self.files[source.name] = pa.OSFile(str(path), "wb")
                pacsv.write_csv(self.schemas[source.name].empty_table(), self.files[source.name])
            else:
                self.parquet[source.name] = pq.ParquetWriter(path, self.schemas[source.name])
        self.truth = pq.ParquetWriter(self.truth_dir / "truth.parquet", TRUTH_SCHEMA)
        self.people: pq.ParquetWriter | None = None

    def write(self, source: str, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self.fmt == "csv":
            pacsv.write_csv(table, self.files[source], pacsv.WriteOptions(include_header=False))
        else:
            self.parquet[source].write_table(table)
        self.rows[source] += table.num_rows

    def write_truth(self, table: pa.Table) -> None:
        if table.num_rows:
            self.truth.write_table(table)

    def write_people(self, table: pa.Table) -> None:
        if self.people is None:
            self.people = pq.ParquetWriter(self.truth_dir / "people.parquet", table.schema)
        self.people.write_table(table)

    def close(self) -> None:
        for writer in [*self.files.values(), *self.parquet.values(), self.truth]:
            writer.close()
        if self.people is not None:
            self.people.close()


def hubs_table(world: World, households: list[pa.Array]) -> pa.Table:
    """Identifiers shared by several people: kiosk devices and household phones."""
    phones = pa.concat_arrays(households) if households else pa.array([], pa.string())
    return pa.table({
        "identifier_type": pa.array(
            ["anonymous_id"] * len(world.kiosk_ids) + ["phone"] * len(phones), pa.string()),
        "identifier_value": pa.concat_arrays([world.kiosk_ids, phones]),
        "kind": pa.array(["kiosk_device"] * len(world.kiosk_ids)
                         + ["household_phone"] * len(phones), pa.string()),
    })


def generate(customers: int, seed: int, out: Path, fmt: str = "csv",
             end_date: date = date(2026, 10, 31), months: int = 24,
             bad_row_rate: float = 0.0005) -> dict[str, int]:
    """Write one landing file per contract source for `customers` people; rows per source."""
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if seed < 0:
        raise ValueError("seed must be non-negative")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    world = make_world(customers, seed, end_date, months)
    counters = Counters()
    output = Output(out, fmt)
    households: list[pa.Array] = []
    try:
        for chunk, first in enumerate(range(0, customers, CHUNK_SIZE)):
            rng = np.random.default_rng([seed, chunk])
            people = make_people(world, rng, first, min(CHUNK_SIZE, customers - first))
            batches = chunk_batches(world, rng, people, counters)
            for source in SOURCES:
                batch = batches.pop(source.name)  # free each source once written
                table = finish(source, batch, rng, bad_row_rate)
                output.write(source.name, table)
                truth = truth_table(source, batch, people)
                if truth is not None:
                    output.write_truth(truth)
                del batch, table, truth
            output.write_people(people_table(world, people))
            households.append(pc.take(people.phone, people.household_hosts))
            del people
    finally:
        output.close()
    pq.write_table(hubs_table(world, households), out / "_ground_truth" / "hubs.parquet")
    return dict(output.rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.generate",
                                     description=__doc__)
    parser.add_argument("--customers", type=int, required=True, help="people to simulate")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True, help="landing folder to write")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--end-date", type=date.fromisoformat, default=date(2026, 10, 31),
                        help="last day of the simulated window (YYYY-MM-DD)")
    parser.add_argument("--months", type=int, default=24, help="length of the window")
    parser.add_argument("--bad-row-rate", type=float, default=0.0005,
                        help="share of rows with an unparseable typed value")
    args = parser.parse_args(argv)
    counts = generate(args.customers, args.seed, args.out, args.format, args.end_date,
                      args.months, args.bad_row_rate)
    width = max(len(k) for k in counts)
    for source, rows in counts.items():
        print(f"{source:<{width}} {rows:>12,}")
    print(f"{'total':<{width}} {sum(counts.values()):>12,}  -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
