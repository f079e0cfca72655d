"""The tui's one formatter and one sanitiser (neurotop.tui.format)."""

import pytest

from neurotop.tui.format import duration, fit, fit_parts, flow, fmt_step, one_line, printable, short, wrap


@pytest.mark.parametrize("raw,shown", [
    ("plain", "plain"),
    ("\x1b[31mred\x1b[0m", "red"),
    ("title\x1b]0;owned\x07 after", "title after"),  # OSC: a window title, gone whole
    ("bell\x07 back\x08space", "bell backspace"),
    ("c1\x9b31m", "c131m"),  # a C1 CSI byte cannot start a sequence
    ("tab\tand\nnewline", "tab\tand\nnewline"),  # kept: the caller lays them out
])
def test_printable_removes_what_could_drive_the_terminal(raw, shown):
    assert printable(raw) == shown


def test_one_line_flattens():
    assert one_line("a\nb\tc\r") == "a b c"


@pytest.mark.parametrize("seconds,text", [(0, "00:00:00"), (3725, "01:02:05"), (90061, "1d 01:01:01"), (-5, "00:00:00")])
def test_duration(seconds, text):
    assert duration(seconds) == text


@pytest.mark.parametrize("step,text", [(950, "950"), (1234, "1234"), (1500, "1.5k"), (2000, "2k"), (12_500, "12.5k"),
                                       (3_200_000, "3.2M")])
def test_fmt_step(step, text):
    assert fmt_step(step) == text


@pytest.mark.parametrize("value,text", [(True, "on"), (2e-3, "2.00e-03"), (0.25, "0.25"), (1024, "1,024"),
                                        ("adam\x1b[2J", "adam")])
def test_short(value, text):
    assert short(value) == text


def test_fit_pads_or_cuts_with_an_ellipsis():
    assert fit("abc", 5) == "abc  " and fit("abcdef", 4) == "abc…" and fit("abc", 5, left=False) == "  abc"
    assert fit("abc", 0) == ""


def test_fit_parts_leaves_out_whole_parts():
    assert fit_parts(["step 600", "ep 12", "00:00:06"], 16) == "step 600  ep 12"
    assert fit_parts(["a-long-part", "b"], 5) == "b"


def test_flow_never_splits_a_part():
    assert flow(["CPU 31% of 16", "RAM 1.7 GB/24 GB"], 30) == [["CPU 31% of 16"], ["RAM 1.7 GB/24 GB"]]
    assert flow(["CPU 31% of 16", "RAM 1.7 GB/24 GB"], 31) == [["CPU 31% of 16", "RAM 1.7 GB/24 GB"]]


def test_wrap_breaks_after_a_blank_else_across():
    assert wrap("refused -5: below the minimum 0", 20) == ["refused -5: below ", "the minimum 0"]
    assert wrap("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]
