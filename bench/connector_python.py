#!/usr/bin/env python3
"""Sends an NDJSON file of track events with the official segment-analytics-python.

Usage: connector_python.py FILE HOST WRITE_KEY
Settings as close to spoor batch as the library allows: batches of 100 (its default), one
consumer thread (its default), and a queue as large as the file so nothing is dropped
(the library drops messages when its queue is full). Prints {"sent", "errors"} as JSON.
"""
import datetime
import json
import sys

from segment.analytics import Client

path, host, write_key = sys.argv[1], sys.argv[2], sys.argv[3]
failed = [0]


def on_error(error, batch):
    failed[0] += len(batch)


client = Client(
    write_key=write_key,
    host=host,
    on_error=on_error,
    max_queue_size=2_000_000,
    upload_size=100,
)
sent = 0
with open(path) as f:
    for line in f:
        m = json.loads(line)
        client.track(
            user_id=m["userId"],
            event=m["event"],
            properties=m["properties"],
            timestamp=datetime.datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")),
        )
        sent += 1
client.flush()
client.join()
print(json.dumps({"sent": sent, "errors": failed[0]}))
