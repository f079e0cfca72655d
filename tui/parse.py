"""Turn a training command's stdout into metric points (``neurotop run`` on an unmodified script).

Pure stdlib. ``OutputParser.feed(bytes)`` takes raw pipe/file chunks (split anywhere, even inside a
UTF-8 character or an ANSI escape), and returns one ``ParsedLine`` per completed line::

    p = OutputParser()
    for pl in p.feed(b"step 100: train loss 2.3456, val loss 2.4567\\n"):
        pl.step, pl.values            # 100, {'train_loss': 2.3456, 'val_loss': 2.4567}

Line handling: ``\\n``, ``\\r\\n`` and a lone ``\\r`` end a line; a segment ended by a lone ``\\r`` is a
progress-bar frame (``transient=True``: the next line overwrites it on a terminal). ANSI escapes
and other control characters are stripped, invalid UTF-8 becomes U+FFFD, and a line is cut to
``MAX_LINE`` characters (the rest is dropped while it streams in, so a 1 GB line costs no memory).

What counts as a metric (built-in mode; see ``_PAIR`` and ``OutputParser._pairs_of``):

* ``name: value`` (a blank after the colon, unless the name is a metric word: ``loss:0.5``),
  ``name=value``, ``'name': value``/``"name": value``;
* ``name value`` only for a known metric word (``loss 5.43``, ``val_loss 0.21``, ``Acc@1 0.39``),
  or when it fills a whole ``| name value |`` cell (fairseq);
* a known metric word may take one qualifier word: ``train loss 2.3`` -> ``train_loss``;
* a JSON object per line (numbers only, nested objects ignored);
* a whitespace table: a header line of names, then rows of numbers (YOLO training table).

A value is a whole number token: ``12:30``, ``1.2.3``, ``640/60000``, ``30.1it/s``, ``0.412s``, ``0x1f``,
``11,689`` are not values. ``%`` is dropped (``mfu 5.00%`` -> 5.0) except on a tqdm bar
(``45%|``). Names are lowercased. ``step``/``iter``/``iteration``/``batch``/``global_step``/
``num_updates`` give ``ParsedLine.step``; ``epoch`` gives ``ParsedLine.epoch``; neither is a series.
Hyperparameter-looking names (``batch_size``, ``num_workers``, ``seed``, ``v_num`` ...) are ignored.

With ``regex=`` (``--metric-regex``) only the user's pattern is used: either named groups
``name`` and ``value`` (every match gives one pair), or groups named after metrics
(``(?P<loss>[-\\d.e]+)``); a ``step`` group gives the step and an ``epoch`` group the epoch.

Run ``python -m neurotop.tui.parse [--metric-regex R] [--bench] [FILE]`` to see what a log parses to.
"""

from __future__ import annotations

import codecs
import functools
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from neurotop.tui.format import printable

MAX_LINE = 4096              # characters of a line that are kept and parsed
_RAW_CAP = 4 * MAX_LINE      # characters buffered per line before ANSI stripping (escapes are long)


@dataclass(frozen=True, slots=True)
class ParsedLine:
    text: str                        # the line as displayed: no ANSI, no control characters, capped
    step: int | None                 # named on the line, else (for a line with values) from ``[cur/total]``
    epoch: int | None                # named on the line, else the last epoch seen (floats are floored)
    values: dict[str, float] = field(default_factory=dict)
    lineno: int = 0                  # 1-based count of lines this parser has produced: a fallback step
    transient: bool = False          # ended by a lone \r: a progress frame the next line overwrites


# ------------------------------------------------------------------------------------- text clean-up
_NEWLINE = re.compile(r"\r\n|\n|\r")
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://\S*")

# ------------------------------------------------------------------------------------ vocabulary
# Words that make a name a metric: needed for ``name value`` (no ``:``/``=``) and for qualifiers.
# A name matches when it, or one of its parts split at _ . / @ -, is here.
METRIC_WORDS = frozenset("""
    loss acc accuracy ppl perplexity lr learning_rate mfu bleu rouge wer cer f1 auc mae mse rmse
    psnr ssim iou miou map map50 precision recall reward entropy kl gnorm grad_norm nll bpc bpb
    top1 top5 acc1 acc5 norm
""".split())
# Qualifier words joined to a following metric word: ``train loss`` -> ``train_loss``.
QUALIFIERS = frozenset("""
    train training val valid validation test eval evaluation dev average avg mean total running best grad
""".split())
# Names that give the step (not a series).
STEP_NAMES = frozenset({"step", "global_step", "iter", "iteration", "batch", "num_updates"})
# Never a series: hyperparameters, process/launcher fields, progress-bar bookkeeping, phase words.
STOP_NAMES = frozenset("""
    batch_size bsz seed rank world_size port pid gpu gpus device devices workers v_num version
    line instances size images eta elapsed it/s s/it dropout beta1 beta2 weight_decay
    train training val valid validation test testing eval evaluation
""".split())
_STOP_SHAPE = re.compile(
    r"^(?:num|n)_|_(?:size|interval|iters|steps|epochs|port|rank|seed|workers|id|dim|len)$"
    r"|(?:error|exception|warning)$")

# ---------------------------------------------------------------------------------- the patterns
# A number: 12, -0.5, .5, 1e-3, 3.2E-02, nan, inf.
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?i:nan|inf)\b"
# After a value: not glued to more of a token (12:30, 1.2.3, 640/600, 30.1it/s, 0x1f, 11,689, 45%|).
_VALUE_END = r"(?:(?P<pct>%)(?!\|))?(?![\w%])(?![.:/,-]\w)"

_PAIR = re.compile(rf"""
    (?<![\w./@'"\\-])                 # the name starts a token: not inside a path, URL or word
    (?P<q>['"]?)                      # HF dict / JSON-ish quotes: 'loss': 0.69
    (?P<name>[A-Za-z][\w.@/-]*)       # loss, val_loss, train/loss, Acc@1
    (?P=q)
    (?P<sep>\s*=\s*|\s*:\s*|\s+)      # loss=0.1, loss: 0.1, loss 0.1 (the last two checked in _pairs_of)
    (?P<value>{_NUM}){_VALUE_END}
""", re.VERBOSE)

# Epoch named on the line: Epoch 3, Epoch: 1, Epoch 1/10, Epoch [1/5], | epoch 001 |, epoch=2.
_EPOCH = re.compile(r"(?<![\w./\\-])epoch\b\s*[:=#]?\s*[\[(]?\s*(\d+)(?![\d.]|,\d)", re.IGNORECASE)
# Step named on the line: step 100:, iter 100:, Iteration 5, Step [100/600], global_step=7, batch 5/100.
_STEP = re.compile(
    r"(?<![\w./\\-])(?:global_step|step|iteration|iter|batch|num_updates)\b\s*[:=#]?\s*[\[(]?\s*(\d+)"
    r"(?![\d.]|,\d)", re.IGNORECASE)
# Position inside an epoch, tried in order:
_POSITIONS = (
    re.compile(r"\[\s*(\d+)\s*/\s*(\d+)\s*[\]( ]"),                # [640/60000 (1%)], [ 100/1251 (  8%)]
    re.compile(r"\|\s*(\d+)/(\d+)\s*\["),                           # tqdm:  45%|████ | 450/1000 [00:10<...
    re.compile(r"^\s*(\d+)/(\d+)\s+[\[━]"),                         # Keras: 1875/1875 [=====] / ━━━━━
    re.compile(r"[━█]\s+(\d+)/(\d+)\s"),                            # rich bar (Lightning RichProgressBar)
)
# timm's epoch: "Train: 0 [ 100/1251 (  8%)]".
_TIMM_EPOCH = re.compile(r"^\s*Train:\s*(\d+)\s*\[")
# A value followed by a plain word is prose or has a unit: "using: 0 TPU cores", "Elapsed: 3 s"
# (but not when the word is the next key: "time: 3.2 acc: 0.9").
_WORD_AFTER = re.compile(r"[ \t]+[A-Za-z][\w.@/-]*(?![\w.@/-]|\s*[:=])")
# "| wps 12345 |": a whole pipe-delimited cell (fairseq) may use a blank as separator.
_PIPE_AFTER = re.compile(r"[ \t]*(?:\||$)")
# Cheap gate before the heavier patterns: no digit (nor nan/inf), no metric.
_PRECHECK = re.compile(r"\d|nan|inf", re.IGNORECASE)
_PART_SPLIT = re.compile(r"[_./@-]")
# Whitespace tables: header cells are names, row cells are numbers or "1/100" (YOLO's Epoch column).
_TABLE_NAME = re.compile(r"[A-Za-z][\w.@-]*")
_TABLE_CELL = re.compile(rf"(?:{_NUM})|(\d+)/\d+")


@functools.lru_cache(maxsize=4096)
def _is_metric_word(name: str) -> bool:
    return name in METRIC_WORDS or any(p in METRIC_WORDS for p in _PART_SPLIT.split(name))


@functools.lru_cache(maxsize=4096)
def _is_stopped(name: str) -> bool:
    return name in STOP_NAMES or _STOP_SHAPE.search(name) is not None


def _as_int(value: float) -> int | None:
    return int(value) if math.isfinite(value) and value == int(value) else None


def _floor(value: float) -> int | None:
    return int(math.floor(value)) if math.isfinite(value) and value >= 0 else None


def _clean(raw: str) -> str:
    return printable(raw)[:MAX_LINE]


class OutputParser:
    """Feed raw output bytes, get ``ParsedLine`` objects; see the module docstring."""

    def __init__(self, regex: str | None = None, enabled: bool = True) -> None:
        self.enabled = enabled
        self.regex = re.compile(regex) if regex else None   # raises re.error on a bad pattern
        if self.regex is not None:
            groups = set(self.regex.groupindex)
            self._pairs = {"name", "value"} <= groups
            self._metric_groups = sorted(groups - {"name", "value", "step", "epoch"})
            if not (self._pairs or self._metric_groups):
                raise ValueError("a metric regex needs named groups: (?P<name>..)(?P<value>..), "
                                 "or groups named after metrics like (?P<loss>[-0-9.e]+)")
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._parts: list[str] = []      # the line being assembled
        self._size = 0                   # characters in _parts (stops growing at _RAW_CAP)
        self._cr_held = False            # the last chunk ended with \r: wait to see if \n follows
        self._lineno = 0
        self._epoch: int | None = None        # last epoch seen (carried to later lines)
        self._epoch_base: int | None = None   # first epoch seen: 0- or 1-based, for positions
        self._header: list[str] | None = None  # column names of a whitespace table

    @property
    def line_count(self) -> int:
        """Lines produced so far (the ``lineno`` of the latest one)."""
        return self._lineno

    # ------------------------------------------------------------------------------ streaming
    def feed(self, chunk: bytes) -> list[ParsedLine]:
        return self._consume(self._decoder.decode(chunk))

    def flush(self) -> ParsedLine | None:
        """End of stream: the last partial line, or None. The decoder is reset; the line counter,
        the carried epoch and a table header carry on (one parser per run)."""
        out = self._consume(self._decoder.decode(b"", final=True), final=True)
        self._decoder.reset()
        return out[-1] if out else None

    def _consume(self, text: str, final: bool = False) -> list[ParsedLine]:
        if self._cr_held:
            text = "\r" + text
            self._cr_held = False
        if text.endswith("\r") and not final:
            text, self._cr_held = text[:-1], True
        out: list[ParsedLine] = []
        start = 0
        for m in _NEWLINE.finditer(text):
            self._append(text[start:m.start()])
            line = self._finish(transient=m.group() == "\r")
            if line is not None:
                out.append(line)
            start = m.end()
        self._append(text[start:])
        if final and self._size:
            out.append(self._finish(transient=False))
        return out

    def _append(self, piece: str) -> None:
        if piece and self._size < _RAW_CAP:
            piece = piece[:_RAW_CAP - self._size]
            self._parts.append(piece)
            self._size += len(piece)

    def _finish(self, transient: bool) -> ParsedLine | None:
        raw = "".join(self._parts)
        self._parts, self._size = [], 0
        if transient and not raw:
            return None                  # "\r\r" or a bar's leading \r: nothing to show
        return self.parse_line(_clean(raw), transient=transient)

    # -------------------------------------------------------------------------------- parsing
    def parse_line(self, text: str, transient: bool = False) -> ParsedLine:
        """Parse one clean line (no \\n, no ANSI) and count it."""
        self._lineno += 1
        if not self.enabled:
            return ParsedLine(text, None, None, {}, self._lineno, transient)
        if self.regex is not None:
            step, epoch, values = self._parse_user(text)
        else:
            step, epoch, values = self._parse_builtin(text)
        return ParsedLine(text, step, epoch, values, self._lineno, transient)

    def _parse_user(self, text: str) -> tuple[int | None, int | None, dict[str, float]]:
        step = epoch = None
        values: dict[str, float] = {}
        for m in self.regex.finditer(text):
            found = m.groupdict()
            if found.get("step") is not None and step is None:
                step = _int_of(found["step"])
            if found.get("epoch") is not None and epoch is None:
                epoch = _int_of(found["epoch"])
            if self._pairs and found["name"] and found["value"] is not None:
                v = _float_of(found["value"])
                if v is not None:
                    values.setdefault(_norm(found["name"]), v)
            for g in self._metric_groups:
                v = _float_of(found[g]) if found[g] is not None else None
                if v is not None:
                    values.setdefault(g.lower(), v)
        return step, epoch, values

    def _parse_builtin(self, text: str) -> tuple[int | None, int | None, dict[str, float]]:
        step = epoch = None
        values: dict[str, float] = {}
        pairs = self._table(text)
        has_number = _PRECHECK.search(text) is not None
        if has_number and ("=" in text or ":" in text or "|" in text
                           or _CHEAP_WORDS.search(text) is not None):
            if "://" in text:
                text = _URL.sub(" ", text)
            found = _json_object(text)
            if found is None:
                low = text.lower()
                if "epoch" in low and (m := _EPOCH.search(text)) is not None:
                    epoch = int(m.group(1))
                elif "Train:" in text and (m := _TIMM_EPOCH.search(text)) is not None:
                    epoch = int(m.group(1))
                if any(w in low for w in ("step", "iter", "batch", "num_updates")) and (
                        m := _STEP.search(text)) is not None:
                    step = int(m.group(1))
                found = self._pairs_of(text)
            pairs += found
        for name, value in pairs:
            if name in STEP_NAMES:
                step = step if step is not None else _as_int(value)
            elif name == "epoch":
                epoch = epoch if epoch is not None else _floor(value)
            elif not _is_stopped(name):
                values.setdefault(name, value)
        if epoch is not None:
            self._epoch = epoch
            if self._epoch_base is None:
                self._epoch_base = epoch
        epoch = self._epoch
        if step is None and values:
            step = self._position_step(text, epoch)   # only to place metrics: bars alone give none
        return step, epoch, values

    def _pairs_of(self, text: str) -> list[tuple[str, float]]:
        pairs = []
        for m in _PAIR.finditer(text):
            name, sep, quoted = m.group("name").rstrip(".-/"), m.group("sep"), m.group("q")
            lname = name.lower()
            metric = _is_metric_word(lname)
            # the token before the name, when only blanks separate them ("train" in "train loss")
            head = text[max(0, m.start() - 32):m.start()]
            prev = head.rstrip(" \t")
            prev_word = prev.rsplit(None, 1)[-1] if prev and len(prev) < len(head) else ""
            if ":" in sep:
                if not (quoted or metric or sep[-1].isspace()):
                    continue                      # cuda:0, localhost:6006, trainer.py:42 (but loss:0.5)
            elif "=" not in sep and not metric and lname not in STEP_NAMES and lname != "epoch":
                # "name value" without : or =: only a metric word, or a whole "| name value |" cell
                if not (prev.endswith("|") and _PIPE_AFTER.match(text, m.end())):
                    continue
            if not metric and not quoted and (
                    (name.isalpha() and prev_word[-1:].isalpha()) or _WORD_AFTER.match(text, m.end())):
                continue                          # prose: "Num examples = 25000", "using: 0 TPU cores"
            if metric and prev_word.lower() in QUALIFIERS:
                lname = f"{prev_word.lower()}_{lname}"
            pairs.append((lname, float(m.group("value"))))
        return pairs

    def _position_step(self, text: str, epoch: int | None) -> int | None:
        if "/" not in text:
            return None
        for pattern in _POSITIONS:
            m = pattern.search(text)
            if m is not None:
                cur, total = int(m.group(1)), int(m.group(2))
                if epoch is None or self._epoch_base is None or total <= 0:
                    return cur
                return max(0, epoch - self._epoch_base) * total + cur
        return None

    def _table(self, text: str) -> list[tuple[str, float]]:
        """A whitespace table: remember a header line of names, read the rows of numbers under it."""
        header = self._header
        if header is None and (":" in text or "=" in text):
            return []
        cells = text.split()
        if not cells:
            return []                             # a blank line keeps the header
        if header is not None and len(cells) >= len(header) and _TABLE_CELL.fullmatch(cells[0]):
            row: list[tuple[str, float]] = []
            numeric = 0
            for name, cell in zip(header, cells):
                m = _TABLE_CELL.fullmatch(cell.rstrip(":"))
                if m is None:
                    continue                      # 2.61G, a class name
                numeric += 1
                if m.group(1) is None:
                    row.append((name, float(cell.rstrip(":"))))
                elif name == "epoch":             # "1/100" in an Epoch column
                    row.append((name, float(m.group(1))))
            if 2 * numeric >= len(header):
                return row
        self._header = None
        if (3 <= len(cells) <= 24 and ":" not in text and "=" not in text
                and all(_TABLE_NAME.fullmatch(c) for c in cells)
                and any(_is_metric_word(c.lower()) for c in cells)):
            self._header = [c.lower() for c in cells]
        return []


# A line with no ":", "=" or "|" can still hold "loss 0.5"; these words are worth a closer look.
_CHEAP_WORDS = re.compile("|".join(sorted(METRIC_WORDS | STEP_NAMES | {"epoch", "top"})), re.IGNORECASE)


def _norm(name: str) -> str:
    return re.sub(r"\s+", "_", name.strip().strip("'\"")).lower()


def _float_of(text: str) -> float | None:
    try:
        return float(text.strip().rstrip("%"))
    except ValueError:
        return None


def _int_of(text: str) -> int | None:
    value = _float_of(text)
    return None if value is None else _as_int(value)


def _json_object(text: str) -> list[tuple[str, float]] | None:
    """The numeric top-level fields of a line that is one JSON object, or None if it is not one."""
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    try:
        obj = json.loads(stripped)
    except ValueError:
        return None                 # e.g. HF's Python dict repr: the regexes read it
    if not isinstance(obj, dict):
        return None
    return [(_norm(k), float(v)) for k, v in obj.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)]



def follow_output(path: Path, parser: OutputParser, take: Callable[[list[ParsedLine]], None],
                  ended: Callable[[], bool], poll: float, stop: Callable[[], bool] = lambda: False) -> None:
    """Parse a command's output file as it grows, handing each batch of lines to ``take``, until
    nothing new is waiting and ``ended()`` holds (or ``stop()``); then its last partial line.
    The supervisor follows it into the journal, the UI into the log pane."""
    with open(path, "rb") as f:
        while not stop():
            data = f.read(1 << 20)
            if data:
                take(parser.feed(data))
            elif ended():
                break
            else:
                time.sleep(poll)
    last = parser.flush()
    if last is not None:
        take([last])


def main(argv: list[str] | None = None) -> int:
    """``python -m neurotop.tui.parse [--metric-regex R] [--bench] [FILE]``: show or time what a log parses to."""
    import argparse
    import sys
    import time

    ap = argparse.ArgumentParser(prog="python -m neurotop.tui.parse", description=main.__doc__)
    ap.add_argument("file", nargs="?", help="a log file (default: stdin)")
    ap.add_argument("--metric-regex", default=None)
    ap.add_argument("--bench", action="store_true", help="time parsing (repeat the file to >= 200k lines)")
    args = ap.parse_args(argv)
    data = open(args.file, "rb").read() if args.file else sys.stdin.buffer.read()
    if args.bench:
        reps = max(1, 200_000 // max(1, data.count(b"\n")))
        blob = data * reps
        parser = OutputParser(args.metric_regex)
        t0 = time.perf_counter()
        n = 0
        for i in range(0, len(blob), 65536):
            n += len(parser.feed(blob[i:i + 65536]))
        n += parser.flush() is not None
        dt = time.perf_counter() - t0
        print(f"{n} lines, {len(blob) / 1e6:.1f} MB in {dt:.3f} s: {n / dt:,.0f} lines/s")
        return 0
    parser = OutputParser(args.metric_regex)
    lines = parser.feed(data)
    if (last := parser.flush()) is not None:
        lines.append(last)
    for pl in lines:
        if pl.values or pl.step is not None:
            print(f"{pl.lineno:6d} step={pl.step} epoch={pl.epoch} {pl.values}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
