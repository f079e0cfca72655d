"""How fast the UI takes metric messages in: ``decode_lines`` + ``RunStore.ingest`` on batches of real
encoded lines, cut the way the link's reader cuts them (complete lines of a read), beside msgspec
decoding the same lines alone (the floor: the protocol's typed decoder, nothing stored).

Batch sizes: 64 KiB (what a read of a full pipe returns, ~700 lines) and 8 MiB (what a journal read
returns when ``attach`` rebuilds a run, ~90k lines).
"""

from __future__ import annotations

import time

import msgspec

from bench import data
from bench.common import median, progress
from neurotop.trainer.protocol import DecodeCounts, Message, decode_lines
from neurotop.tui.store import RunStore

SIZES = {"64 KiB (pipe)": 64 << 10, "8 MiB (journal)": 8 << 20}


def cut(blob: bytes, size: int) -> list[bytes]:
    """Chunks of about ``size`` bytes ending at a line boundary (the newline dropped, as the
    reader drops it)."""
    out, start, n = [], 0, len(blob)
    while start < n:
        end = blob.rfind(b"\n", start, min(start + size, n))
        if end < 0:
            end = blob.find(b"\n", start)
        out.append(blob[start:end])
        start = end + 1
    return out


def measure(steps: int = 1_000_000, reps: int = 3) -> dict:
    blob = b"".join(data.journal_chunks(steps, finished=False))
    lines = blob.count(b"\n")
    decoder = msgspec.json.Decoder(Message)
    results = {"messages": lines, "sizes": {}}
    for label, size in SIZES.items():
        chunks = cut(blob, size)
        ingest, decode_only, raw = [], [], []
        for _ in range(reps):
            store, counts = RunStore(), DecodeCounts()
            t0 = time.perf_counter()
            for chunk in chunks:
                store.ingest(decode_lines(chunk.split(b"\n"), counts))
            ingest.append(lines / (time.perf_counter() - t0))
            assert store.intake.messages == lines and counts.malformed == 0 and len(store.metrics.series["loss"]) == steps

            counts = DecodeCounts()
            t0 = time.perf_counter()
            for chunk in chunks:
                decode_lines(chunk.split(b"\n"), counts)
            decode_only.append(lines / (time.perf_counter() - t0))

            dec = decoder.decode
            t0 = time.perf_counter()
            for chunk in chunks:
                [dec(line) for line in chunk.split(b"\n")]
            raw.append(lines / (time.perf_counter() - t0))
        results["sizes"][label] = {
            "lines_per_batch": lines / len(chunks),
            "ingest_per_s": median(ingest),
            "decode_lines_per_s": median(decode_only),
            "msgspec_per_s": median(raw),
        }
        progress(f"ingest {label}: {median(ingest):,.0f}/s (msgspec alone {median(raw):,.0f}/s)")
    return results
