import math

import numpy as np
import pytest

from neurotop.trainer.params import Param, Refused
from neurotop.trainer.protocol import (
    MAX_EVENT_LINE, Activations, Coalesced, Command, DecodeCounts, Event, Hello, LayerInfo, LineFramer, Metric,
    ParamChange, ParamSpec, Sample, SeriesSpan, Status, decode, decode_lines, dequantize, encode, quantize,
    Malformed, Unknown,
)
from neurotop.tui.param_input import parse_typed, step_value

EXAMPLES = [
    Hello(version=1, run_id="r", name="n", pid=1, host="h", started=1.5,
          model=[LayerInfo(name="enc.0", kind="Linear", shape=[32, 64], params=2080)],
          params=[ParamSpec(name="lr", kind="float", value=1e-3, default=1e-3, min=1e-6, max=1.0, log=True)]),
    Metric(step=3, t=2.0, values={"loss": 0.5, "val_loss": 0.25}, epoch=1),
    Activations(step=3, layer="enc.1", rows=2, cols=3, lo=-1.0, scale=0.01, cells=bytes([0, 1, 2, 253, 254, 255])),
    Sample(step=3, name="inputs", count=1, height=2, width=2, lo=0.0, scale=1.0, cells=b"\x00\x10\x20\xff"),
    ParamChange(step=4, t=3.0, name="lr", new=2e-3, old=1e-3, source="ui"),
    ParamChange(step=4, t=3.0, name="lr", new=50.0, ok=False, reason="above the maximum 1", source="ui"),
    Event(step=5, t=4.0, kind="note", text="dead units in enc.1 ✓", source="ui"),
    Status(step=6, t=5.0, state="failed", exit_code=1, detail="boom"),
    Command(action="set", name="optimizer", value="sgd"),
    Command(action="set", name="flag", value=True),
    Command(action="pause"),
]


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    line = encode(msg)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line) == msg


def test_values_keep_their_type():
    assert decode(encode(Command(action="set", name="x", value=True))).value is True
    assert decode(encode(Command(action="set", name="x", value=3))).value == 3
    assert isinstance(decode(encode(Command(action="set", name="x", value=3))).value, int)
    assert isinstance(decode(encode(Command(action="set", name="x", value=3.0))).value, float)


def test_bad_lines_are_counted_not_fatal():
    counts = DecodeCounts()
    lines = [encode(EXAMPLES[1]).strip(), b"not json", b'{"type":"metric","step":"x"}', b'{"type":"telemetry","a":1}',
             b"\xff\xfe", b"[1,2]", b"", b'{"type":"metric","step":1,"t":0,"values":{"loss":NaN}}']
    out = decode_lines(lines, counts)
    assert out == [EXAMPLES[1]]
    assert counts.unknown == 1
    assert counts.malformed == 5
    with pytest.raises(Unknown):
        decode(b'{"type":"future-thing"}')
    with pytest.raises(Malformed):
        decode(b'{"type":"command","action":"rm -rf"}')


def test_params_validate():
    lr = Param(1e-3, min=1e-6, max=1.0, log=True)
    assert lr.kind == "float" and lr.validate(2e-3) == 2e-3 and lr.validate(1) == 1.0
    for bad, reason in [(5.0, "above"), (0.0, "below"), ("x", "number"), (True, "number"), (math.nan, "finite")]:
        with pytest.raises(Refused, match=reason):
            lr.validate(bad)
    bs = Param(64, min=1, max=512)
    assert bs.kind == "int" and bs.validate(128.0) == 128
    with pytest.raises(Refused, match="whole"):
        bs.validate(1.5)
    opt = Param("adam", choices=["adam", "sgd"])
    assert opt.validate("sgd") == "sgd"
    with pytest.raises(Refused, match="one of"):
        opt.validate("lbfgs")
    flag = Param(False)
    assert flag.kind == "bool" and flag.validate(True) is True
    with pytest.raises(Refused):
        flag.validate(1)
    with pytest.raises(ValueError):
        Param(1e-3, log=True)


def test_step_value():
    lr = Param(1e-3, min=1e-6, max=1e-2, log=True).spec("lr", 1e-3)
    assert step_value(lr, 1e-3, +1) == 2e-3
    assert step_value(lr, 1e-3, -1) == 5e-4
    assert step_value(lr, 8e-3, +1) == 1e-2  # clamped
    wd = Param(0.0, min=0.0, max=0.1).spec("wd", 0.0)
    assert step_value(wd, 0.0, +1) == pytest.approx(0.01)
    assert step_value(wd, 0.0, -1) == 0.0
    opt = Param("adam", choices=["adam", "adamw", "sgd"]).spec("opt", "adam")
    assert step_value(opt, "sgd", +1) == "adam"
    assert step_value(opt, "adam", -1) == "sgd"
    assert step_value(Param(3, min=1, max=5).spec("n", 3), 3, +1) == 4


def test_parse_typed():
    lr = Param(1e-3, min=1e-6, max=1.0, log=True).spec("lr", 1e-3)
    assert parse_typed(lr, " 3e-4 ") == 3e-4
    with pytest.raises(Refused):
        parse_typed(lr, "fast")
    flag = Param(False).spec("f", False)
    assert parse_typed(flag, "yes") is True
    assert parse_typed(Param(2, min=0, max=9).spec("n", 2), "7") == 7


def test_no_eval_of_payloads():
    """A value that looks like code stays a string; a choice param refuses it."""
    cmd = decode(b'{"type":"command","action":"set","name":"optimizer","value":"__import__(\'os\').system(\'x\')"}')
    assert isinstance(cmd.value, str)
    with pytest.raises(Refused):
        Param("adam", choices=["adam"]).validate(cmd.value)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_the_line_framer_keeps_lines_whole_and_drops_an_oversize_one_to_its_end(chunk):
    stream = b'{"a":1}\n' + b"x" * 300 + b"\n" + b'{"b":2}\n{"c":3}\n' + b"y" * 500 + b"\n{\"d\":4}\n" + b'{"torn"'
    framer = LineFramer(limit=100)
    lines = []
    for i in range(0, len(stream), chunk):
        lines += framer.feed(stream[i : i + chunk])
    assert lines == [b'{"a":1}', b'{"b":2}', b'{"c":3}', b'{"d":4}']
    assert framer.oversize == 2
    assert framer.finish() == b'{"torn"' and framer.finish() == b""


def test_the_journal_reader_uses_the_one_limit(tmp_path):
    from neurotop.trainer.journal import JournalReader

    path = tmp_path / "journal.jsonl"
    path.write_bytes(b"z" * (MAX_EVENT_LINE + 1) + b"\n" + b'{"ok":1}\n')
    reader = JournalReader(path)
    lines = []
    while reader.offset < path.stat().st_size:
        lines += reader.read_lines(1 << 20)
    assert lines == [b'{"ok":1}'] and reader.skipped == 1
    reader.close()


@pytest.mark.parametrize("levels,dtype", [(255, "u1"), (65535, "<u2")])
def test_quantize_and_dequantize_are_each_others_inverse(levels, dtype):
    values = np.array([-1.5, 0.0, 0.25, 3.0, float("nan")])
    lo, scale, cells = quantize(values, levels, dtype)
    back = dequantize(cells, lo, scale, dtype=dtype)
    np.testing.assert_allclose(back[:4], values[:4], atol=scale / 2 + 1e-12)
    assert back[4] == pytest.approx(0.0, abs=scale)  # what is not finite travels as 0
    assert len(dequantize(cells, lo, scale, 99, dtype)) == 5  # never more than the cells carry
    assert len(dequantize(cells, lo, scale, 2, dtype)) == 2


def test_a_coalesced_span_travels_and_is_known():
    msg = Coalesced(first=10, step=20, t=1.0, points=11,
                    series={"loss": SeriesSpan(count=11, min=0.1, max=0.9, mean=0.4, last=0.2)})
    line = encode(msg)
    assert b'"loss":[11,0.1,0.9,0.4,0.2]' in line
    assert decode(line) == msg
