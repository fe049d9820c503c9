"""The simulated people of one chunk: names, contact details, spellings, households."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tools.sample_data.shapes import (ALT_EMAIL_RATE, ANONYMOUS_ONLY_RATE, COUNTRIES,
    COUNTRY_WEIGHTS, DAY, EMAIL_DOMAINS, EMAIL_DOMAIN_WEIGHTS, EMAIL_PATTERN_WEIGHTS,
    EMAIL_ROW_WEIGHTS, FIRST_NAMES, HAS_PHONE_RATE, HOUSEHOLD_RATE, LAST_NAMES,
    LOYALTY_ONLINE_RATE, LOYALTY_STORE_RATE, NAME_ROW_WEIGHTS, PHONE_ROW_WEIGHTS, PHONE_TEMPLATES,
    REGISTERED_RATE, WORK_DOMAINS)
from tools.sample_data.values import (CITY_OFFSETS, FIRST_SLUGS, FIRST_SPELLINGS, LAST_SLUGS,
    LAST_SPELLINGS, cat, ids, integers, null_where, pick, put_digits, render, scramble)
from tools.sample_data.world import World


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
