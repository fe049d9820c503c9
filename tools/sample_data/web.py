"""Web behaviour: devices, page views, track events and identify calls."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tools.sample_data.commerce import Orders
from tools.sample_data.people import People
from tools.sample_data.shapes import (BASE_URL, DAY, DEVICE_IDENTIFY_RATE, KIOSK_USER_AGENT,
    KIOSK_USER_RATE, REFERRERS, REFERRER_WEIGHTS, URL_SUFFIXES, URL_SUFFIX_WEIGHTS, USER_AGENTS,
    WEB_RATE)
from tools.sample_data.values import (amounts, cat, integers, null_where, pick, rank_within,
    timestamps, uniform_between, uuids)
from tools.sample_data.world import Batch, Counters, World


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
