#!/usr/bin/env python3
"""Bytes of the audit trail per call, by RPC: walks the frames of a data
directory's audit segments (src/store/audit_log.rs: length u32 LE | crc32
u32 LE | postcard(Record)) and groups them by the call each record names.

    benches/audit_frames.py DATA_DIR

Prints, per call: records, bytes on disk (frame header included) and bytes
per record; then the totals and the audit directory's size (segments plus
the `synced` and `pruned` marks)."""
import os
import re
import sys
from collections import defaultdict

CALL = re.compile(rb"medassist\.v1\.[A-Za-z]+/[A-Za-z]+|grpc\.[A-Za-z.]+/[A-Za-z]+|(?:GET|POST|PUT|DELETE) /[!-~]*")

audit = os.path.join(sys.argv[1], "audit")
count, size = defaultdict(int), defaultdict(int)
for name in sorted(f for f in os.listdir(audit) if f.endswith(".log")):
    data = open(os.path.join(audit, name), "rb").read()
    at = 0
    while at + 8 <= len(data):
        length = int.from_bytes(data[at:at + 4], "little")
        body = data[at + 8:at + 8 + length]
        if length == 0 or len(body) < length:
            break  # an unsynced tail (cut back at the next start)
        match = CALL.search(body)
        call = match.group(0).decode() if match else "?"
        count[call] += 1
        size[call] += 8 + length
        at += 8 + length
dir_bytes = sum(os.path.getsize(os.path.join(audit, f)) for f in os.listdir(audit))
print(f"{'call':<52} {'records':>9} {'bytes':>12} {'B/record':>9}")
for call in sorted(count, key=lambda c: -count[c]):
    print(f"{call:<52} {count[call]:>9} {size[call]:>12} {size[call] / count[call]:>9.1f}")
records, frames = sum(count.values()), sum(size.values())
print(f"{'all':<52} {records:>9} {frames:>12} {frames / max(records, 1):>9.1f}")
print(f"audit directory: {dir_bytes} bytes")
