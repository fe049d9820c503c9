"""`python -m orchestration.serving`: run the profile API with uvicorn, or build a snapshot.

    python -m orchestration.serving --host 127.0.0.1 --port 8000 --workers 2
    python -m orchestration.serving build-snapshot     # from CDP_WAREHOUSE into CDP_SERVING_SNAPSHOT
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.serving", description=__doc__)
    parser.add_argument("command", nargs="?", choices=["serve", "build-snapshot"], default="serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "build-snapshot":
        from orchestration.serving.snapshot import build_snapshot
        from orchestration.warehouse import WarehouseResource

        with WarehouseResource().open() as wh:  # the target of CDP_DBT_TARGET
            report = build_snapshot(wh)
        print(f"serving snapshot {report.path}: {report.as_metadata()}")
        return 0
    import uvicorn

    from orchestration.serving.keys import KeyStore

    KeyStore.from_env()  # fail here, naming the file and field, rather than on the first request
    uvicorn.run("orchestration.serving.asgi:app", host=args.host, port=args.port,
                workers=args.workers, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
