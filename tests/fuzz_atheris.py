"""Coverage-guided fuzzing of the event stream with atheris (libFuzzer). Run by hand, not in CI:

    .venv/bin/pip install atheris
    .venv/bin/python tests/fuzz_atheris.py -runs=100000            # or -max_total_time=600
    .venv/bin/python tests/fuzz_atheris.py tests/fuzz_corpus -runs=0   # replay the corpus only

Without a corpus directory it starts from a scratch one (under the system temp dir, printed at
start) seeded with ``tests/fuzz_corpus`` and one line of every message type, and gives libFuzzer a
dictionary of the protocol's keys; libFuzzer writes what it learns there, never into the repo.

Each input is treated as what a child could write to its events pipe: it is split into lines,
decoded, ingested into a ``RunStore`` and handed to what the panes do with it (the activation and
sample decoders, ``step_value`` for ``+``/``-`` on every declared parameter, ``Series.view``).
Anything that raises is a crash; libFuzzer saves the input as ``crash-*``: minimise it into
``tests/fuzz_corpus/`` and it becomes a regression test (see that folder's README).

What it found so far (a "type" that is an object or array made ``decode`` raise TypeError, which
killed the reader threads) is in ``tests/fuzz_corpus/type-not-a-string.jsonl``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports():
    from neurotop.tui.param_input import step_value
    from neurotop.trainer.protocol import Activations, DecodeCounts, Sample, decode_lines
    from neurotop.tui.store import RunStore
    from neurotop.tui.widgets.activations import decode_cells
    from neurotop.tui.widgets.reconstructions import decode_images


def one_input(data: bytes) -> None:
    counts = DecodeCounts()
    messages = decode_lines(data.split(b"\n"), counts)
    store = RunStore()
    store.ingest(messages)
    for msg in messages:
        if isinstance(msg, Activations):
            decode_cells(msg)
        elif isinstance(msg, Sample):
            decode_images(msg)
    for spec in store.params.specs.values():
        for direction in (1, -1):
            step_value(spec, spec.value, direction)
    for series in store.metrics.series.values():
        series.view(columns=40)
        series.minmax()


SEEDS = [
    b'{"type":"hello","version":1,"run_id":"r","name":"n","pid":1,"host":"h","started":0.0,"params":[{"name":"lr",'
    b'"kind":"float","value":0.001,"default":0.001,"min":1e-06,"max":1.0,"log":true},{"name":"o","kind":"choice",'
    b'"value":"a","default":"a","choices":["a","b"]}],"model":[{"name":"enc","kind":"ReLU"}]}',
    b'{"type":"metric","step":1,"t":0.0,"values":{"loss":0.5,"val_loss":null},"epoch":0}',
    b'{"type":"activations","step":1,"layer":"enc","rows":2,"cols":2,"lo":0.0,"scale":0.01,"cells":"AAEC/w==","units":2}',
    b'{"type":"sample","step":1,"name":"inputs","count":1,"height":2,"width":2,"lo":0.0,"scale":1.0,"cells":"AAEC/w=="}',
    b'{"type":"param","step":1,"t":0.0,"name":"lr","new":0.002,"old":0.001,"ok":false,"reason":"x","source":"ui"}',
    b'{"type":"event","step":1,"t":0.0,"kind":"warning","text":"t","source":"guard","path":"p"}',
    b'{"type":"status","step":1,"t":0.0,"state":"failed","exit_code":1,"detail":"d","steps_per_s":1.0,"dropped":2}',
    b'{"type":"command","action":"set","name":"lr","value":0.1,"source":"ui"}',
]
TOKENS = ["type", "hello", "metric", "activations", "sample", "param", "event", "status", "command", "step", "t",
          "values", "epoch", "params", "kind", "value", "default", "min", "max", "log", "choices", "name", "rows",
          "cols", "lo", "scale", "cells", "units", "count", "height", "width", "state", "exit_code", "finished",
          "failed", "running", "float", "int", "bool", "choice", "null", "true", "false", "1e308", "-1",
          "18446744073709551616", "NaN", "Infinity", "\\u0000", "[/]", '"', "\n", ":", ",", "{", "}", "[", "]"]


def scratch_corpus() -> list[str]:
    """A temporary corpus dir seeded from the repo's, and a libFuzzer dictionary, as arguments."""
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="neurotop-fuzz-"))
    corpus = work / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(SEEDS):
        (corpus / f"seed-{i}").write_bytes(seed + b"\n")
    for path in (Path(__file__).parent / "fuzz_corpus").glob("*.jsonl"):
        (corpus / path.name).write_bytes(path.read_bytes())
    quoted = ("".join(f"\\x{b:02x}" for b in t.encode()) for t in TOKENS)  # libFuzzer's escapes
    (work / "protocol.dict").write_text("".join(f'"{q}"\n' for q in quoted))
    print(f"fuzz_atheris: corpus {corpus}", file=sys.stderr)
    return [str(corpus), f"-dict={work / 'protocol.dict'}"]


def main() -> None:
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):
        argv += scratch_corpus()
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
