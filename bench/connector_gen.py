#!/usr/bin/env python3
"""Writes N track events as NDJSON to stdout: the input of bench/connector.sh.

Each line is a track call of about 200 bytes, without a messageId (every sender assigns its
own), with a fixed timestamp so runs are comparable.
"""
import sys

n = int(sys.argv[1])
out = sys.stdout
buf = []
for i in range(n):
    buf.append(
        '{"type":"track","userId":"user-%d","event":"Product Viewed",'
        '"properties":{"product_id":"p-%d","price":19.99,"category":"shoes","position":%d},'
        '"timestamp":"2024-05-01T12:00:00.000Z"}\n' % (i % 10000, i, i % 50)
    )
    if len(buf) == 10000:
        out.write("".join(buf))
        buf.clear()
out.write("".join(buf))
