"""Drives a spoor collector with the official segment-analytics-python library.

Used by spoor's integration tests (crates/spoor-cli/tests/it/official_libs.rs). Prints one
JSON object on stdout: {"errors": [{"status": ..., "message": ...}, ...]} listing every
error the library reported through on_error.

Modes:
  all-types  one call of every type with known message ids (PREFIX-identify, ...)
  many       COUNT track calls with message ids PREFIX-0 .. PREFIX-(COUNT-1)
  bad-key    a few calls with the given (wrong) write key; the library must report the 401
"""

import argparse
import json
import sys

from segment.analytics import Client


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["all-types", "many", "bad-key"])
    parser.add_argument("--host", required=True)
    parser.add_argument("--write-key", required=True)
    parser.add_argument("--prefix", default="py")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()

    errors = []

    def on_error(error, items):
        errors.append(
            {
                "status": getattr(error, "status", None),
                "message": str(error),
                "items": len(items),
            }
        )

    client = Client(
        args.write_key,
        host=args.host,
        gzip=args.gzip,
        on_error=on_error,
        max_retries=3,
        upload_size=100,
    )
    p = args.prefix

    if args.mode == "all-types":
        client.identify(
            user_id="user-42",
            traits={"email": "ada@example.com", "name": "Ada Lovelace", "plan": "pro", "age": 36},
            message_id=f"{p}-identify",
        )
        client.track(
            user_id="user-42",
            event="Order Completed",
            properties={"order_id": "o-1", "revenue": 19.99, "currency": "EUR", "items": [{"sku": "s-1"}]},
            message_id=f"{p}-track",
        )
        client.page(
            user_id="user-42",
            category="Docs",
            name="Getting Started",
            properties={"url": "https://example.com/docs", "title": "Getting Started"},
            message_id=f"{p}-page",
        )
        client.screen(
            anonymous_id="anon-7",
            name="Home",
            properties={"variant": "b"},
            message_id=f"{p}-screen",
        )
        client.group(
            user_id="user-42",
            group_id="org-9",
            traits={"name": "Analytical Engines Ltd", "employees": 12},
            message_id=f"{p}-group",
        )
        client.alias(previous_id="anon-7", user_id="user-42", message_id=f"{p}-alias")
    elif args.mode == "many":
        for i in range(args.count):
            client.track(
                user_id=f"user-{i % 17}",
                event="Item Viewed",
                properties={"index": i},
                message_id=f"{p}-{i}",
            )
    else:
        client.identify(user_id="user-1", traits={"x": 1}, message_id=f"{p}-bad-1")
        client.track(user_id="user-1", event="Refused", message_id=f"{p}-bad-2")

    client.flush()
    client.join()
    json.dump({"errors": errors}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
