"""Contacts with the business: CRM, email events, support tickets, consents, privacy requests."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tools.sample_data.people import People
from tools.sample_data.shapes import (CAMPAIGN_RECEIVE_RATE, CODE_CASE_VARIANT_RATE,
    CONSENT_CHANGE_RATE, CONSENT_PURPOSES, CONSENT_PURPOSE_RATES, CONSENT_RATE, CONSENT_SOURCES,
    COOKIE_CONSENT_RATE, COUNTRY_SPELLINGS, CRM_DUPLICATE_RATE, CRM_RATE, DAY,
    EMAIL_SUBSCRIBER_RATE, PRIVACY_REQUEST_RATE, SUPPORT_CHANNELS, SUPPORT_RATE, SUPPORT_STATUSES,
    YEAR)
from tools.sample_data.values import (CITY_NAMES, CITY_OFFSETS, ids, integers, null_where, pick,
    rank_within, timestamps, uniform_between)
from tools.sample_data.web import Devices
from tools.sample_data.world import Batch, Counters, World


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
