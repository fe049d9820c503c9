"""Purchases: shop orders and lines, store transactions, loyalty members."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tools.sample_data.people import People
from tools.sample_data.shapes import (BUYER_RATE, CARD_SCANNED_RATE, CODE_CASE_VARIANT_RATE,
    CURRENCIES, CURRENCY_RATES, CURRENCY_VARIANTS, CURRENCY_VARIANT_RATE, DAY, JUNK_IDS,
    LOGGED_IN_ORDER_RATE, YEAR)
from tools.sample_data.values import (amounts, cat, ids, integers, null_where, pick, rank_within,
    timestamps, uniform_between)
from tools.sample_data.world import Batch, Counters, World


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
