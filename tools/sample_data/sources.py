"""Every landing source's batch for one chunk of people."""

from __future__ import annotations

import numpy as np

from tools.sample_data.commerce import loyalty_batch, make_orders, pos_batch, shop_batches
from tools.sample_data.contacts import (consents_batch, crm_batch, email_events_batch,
    privacy_batch, support_batch)
from tools.sample_data.people import People
from tools.sample_data.web import identifies_batch, make_devices, pages_batch, tracks_batch
from tools.sample_data.world import Batch, Counters, World


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
