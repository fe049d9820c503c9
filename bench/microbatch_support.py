"""Shared by the micro-batch latency benchmarks: a real webhook receiver and the setup steps."""

import datetime as dt
import http.server
import json
import threading
import time
from pathlib import Path


class Receiver(http.server.BaseHTTPRequestHandler):
    """Records (arrival time.time(), body) of every POST; answers 200."""

    bodies: list[tuple[float, str]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        Receiver.bodies.append((time.time(), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def start_receiver() -> http.server.ThreadingHTTPServer:
    """Serve on a free loopback port in a daemon thread; `.server_port`, `.shutdown()`."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def received_at(needle: str) -> float | None:
    """When the first body containing `needle` arrived (time.time()), or None."""
    return next((t for t, body in Receiver.bodies if needle in body), None)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def consented_user_ids(warehouse: Path, limit: int = 50) -> list[str]:
    """user_ids of customers with email-marketing consent: their triggers may be sent."""
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        return [r[0] for r in con.execute(
            "select distinct i.identifier_value from main_marts.customer_identities as i "
            "join main_marts.customer_consents as c on c.customer_id = i.customer_id "
            "where i.identifier_type = 'user_id' and c.purpose = 'email_marketing' "
            "and c.is_granted order by 1 limit ?", [limit]).fetchall()]


def warm_up_trigger_sync(defs, instance) -> None:
    """Refresh triggers and sync once: the sync's state takes the firings of the full run, so
    the measured repeats send only their own."""
    import dagster as dg

    job = defs.resolve_implicit_global_asset_job_def()
    warm = job.get_subset(asset_selection={dg.AssetKey(["triggers", "trigger_events"]),
                                           dg.AssetKey(["activation", "triggers_to_webhook"])})
    assert warm.execute_in_process(instance=instance).success


def loaded_cursor(landing: Path) -> str:
    """The landing sensor's cursor after it has handed every current file to a run."""
    from orchestration.sensors import landing_fingerprint

    return json.dumps(landing_fingerprint(landing)[0])


def cart_abandon_csv(event_id: str, user_id: str) -> str:
    """A segment_tracks file with one "Product Added" event, 2 hours ago, for `user_id`."""
    occurred = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return ("id,anonymous_id,user_id,event,timestamp,product_id\n"
            f"{event_id},,{user_id},Product Added,{occurred},P-1\n")
