"""Vectorised value building: ids, uuids, timestamps, amounts and the spellings of names."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tools.sample_data.shapes import (CITIES, DAY, FIRST_NAMES, LAST_NAMES, OFFSET_MINUTES,
    PRIME_MULTIPLIER, TIMESTAMP_FORMAT_WEIGHTS)


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

def uniform_between(rng: np.random.Generator, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return low + (rng.random(len(low)) * np.maximum(high - low, 0)).astype(np.int64)


def rank_within(counts: np.ndarray) -> np.ndarray:
    """0, 1, ... within each run of a `np.repeat(..., counts)`."""
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(int(counts.sum())) - starts
