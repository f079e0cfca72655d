"""neurotop.tui.parse: training-script output lines -> metric points."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurotop.tui.parse import MAX_LINE, OutputParser, ParsedLine

CORPUS = Path(__file__).parent / "data" / "output_corpus.txt"


def parse(*lines: str, **kw) -> list[ParsedLine]:
    p = OutputParser(**kw)
    return p.feed(("\n".join(lines) + "\n").encode())


def last(*lines: str, **kw) -> ParsedLine:
    return parse(*lines, **kw)[-1]


def feed_all(p: OutputParser, chunks) -> list[ParsedLine]:
    out = []
    for c in chunks:
        out += p.feed(c)
    tail = p.flush()
    return out + ([tail] if tail is not None else [])


# ---------------------------------------------------------------------------------- the corpus
# (lines fed in order, expected step, epoch and values of the LAST line). Real-looking output of
# common training scripts; earlier lines give context (Keras prints "Epoch 1/10" on its own line).
CASES = {
    # the basic shapes
    "colon": (["loss: 0.123"], None, None, {"loss": 0.123}),
    "equals": (["loss=0.123"], None, None, {"loss": 0.123}),
    "scientific": (["lr=1e-3 loss: 3.2E-02 wd=5.0e+2"], None, None,
                   {"lr": 1e-3, "loss": 3.2e-2, "wd": 500.0}),
    "negative": (["reward: -12.5 kl=-0.003 advantage = -1e-4"], None, None,
                 {"reward": -12.5, "kl": -0.003, "advantage": -1e-4}),
    "epoch_val_loss": (["Epoch 3 - train_loss 0.3012 - val_loss 0.21 - time 12.1s"], None, 3,
                       {"train_loss": 0.3012, "val_loss": 0.21}),
    "json": (['{"step": 10, "loss": 0.3, "lr": 0.001, "tag": "x", "ok": true}'], 10, None,
             {"loss": 0.3, "lr": 0.001}),
    "json_nested_ignored": (['{"step": 7, "train": {"loss": 0.3}, "epoch": 2}'], 7, 2, {}),
    # PyTorch examples: MNIST (step = samples seen since the first epoch) and ImageNet
    "mnist_train": (["Train Epoch: 1 [640/60000 (1%)]\tLoss: 0.300195"], 640, 1, {"loss": 0.300195}),
    "mnist_epoch2": (["Train Epoch: 1 [0/60000 (0%)]\tLoss: 2.305134",
                      "Train Epoch: 2 [640/60000 (1%)]\tLoss: 0.101234"], 60640, 2, {"loss": 0.101234}),
    "mnist_test": (["Train Epoch: 1 [59520/60000 (99%)]\tLoss: 0.019334", "",
                    "Test set: Average loss: 0.0335, Accuracy: 9890/10000 (99%)"], None, 1,
                   {"average_loss": 0.0335}),
    "imagenet": (["Epoch: [0][ 10/5005]\tTime  0.359 ( 0.482)\tData  0.001 ( 0.098)\tLoss 6.9126e+00 "
                  "(6.9256e+00)\tAcc@1   0.00 (  0.08)\tAcc@5   0.39 (  0.51)"], 10, 0,
                 {"loss": 6.9126, "acc@1": 0.0, "acc@5": 0.39}),
    "tutorial": (["Epoch [1/5], Step [100/600], Loss: 0.2134"], 100, 1, {"loss": 0.2134}),
    # Hugging Face Trainer (a Python dict repr, read with regexes, never eval'd)
    "hf_log": (["{'loss': 0.6931, 'learning_rate': 4.9e-05, 'epoch': 0.01}"], None, 0,
               {"loss": 0.6931, "learning_rate": 4.9e-05}),
    "hf_grad_norm": (["{'loss': 0.4512, 'grad_norm': 3.2104, 'learning_rate': 4.5e-05, 'epoch': 1.6}"],
                     None, 1, {"loss": 0.4512, "grad_norm": 3.2104, "learning_rate": 4.5e-05}),
    "hf_eval": (["{'eval_loss': 0.3012, 'eval_accuracy': 0.8876, 'eval_runtime': 41.5, "
                 "'eval_samples_per_second': 602.4, 'eval_steps_per_second': 75.3, 'epoch': 1.0}"], None, 1,
                {"eval_loss": 0.3012, "eval_accuracy": 0.8876, "eval_runtime": 41.5,
                 "eval_samples_per_second": 602.4, "eval_steps_per_second": 75.3}),
    "hf_nan": (["{'loss': nan, 'grad_norm': inf, 'learning_rate': 0.0, 'epoch': 0.5}"], None, 0,
               {"loss": math.nan, "grad_norm": math.inf, "learning_rate": 0.0}),
    # PyTorch Lightning (tqdm bar and rich bar)
    "lightning": (["Epoch 0:  45%|████▌     | 450/1000 [00:10<00:12, 44.1it/s, v_num=0, train_loss=0.512]"],
                  450, 0, {"train_loss": 0.512}),
    "lightning_epoch1": (["Epoch 0: 100%|██████████| 1000/1000 [00:22<00:00, 44.1it/s, v_num=0, train_loss=0.4]",
                          "Epoch 1:  10%|█         | 100/1000 [00:02<00:20, 44.1it/s, v_num=0, train_loss=0.3, "
                          "val_loss=0.45, val_acc=0.88]"], 1100, 1,
                         {"train_loss": 0.3, "val_loss": 0.45, "val_acc": 0.88}),
    "lightning_rich": (["Epoch 1/9  ━━━━━━━━━━━━━━━━━━━━ 938/938 0:00:12 • 0:00:00 78.55it/s v_num: 3.000 "
                        "train_loss: 0.123 val_loss: 0.2"], 938, 1, {"train_loss": 0.123, "val_loss": 0.2}),
    "lightning_ckpt": (["Epoch 3, global step 400: 'val_loss' reached 0.25000 (best 0.25000), saving model to "
                        "'/runs/lightning_logs/version_0/checkpoints/epoch=3-step=400.ckpt' as top 1"], 400, 3, {}),
    # Keras 2 and Keras 3
    "keras_line": (["Epoch 1/10 1875/1875 - 3s - loss: 0.2345 - accuracy: 0.91 - val_loss: 0.3"], None, 1,
                   {"loss": 0.2345, "accuracy": 0.91, "val_loss": 0.3}),
    "keras2": (["Epoch 2/10", "1875/1875 [==============================] - 5s 2ms/step - loss: 0.2961 - "
                "accuracy: 0.9139 - val_loss: 0.1452 - val_accuracy: 0.9571"], 1875, 2,
               {"loss": 0.2961, "accuracy": 0.9139, "val_loss": 0.1452, "val_accuracy": 0.9571}),
    "keras2_eta": (["Epoch 1/10", "  32/1875 [..............................] - ETA: 3:13 - loss: 2.3017 - "
                    "accuracy: 0.0938"], 32, 1, {"loss": 2.3017, "accuracy": 0.0938}),
    "keras3": (["Epoch 1/5", "1875/1875 ━━━━━━━━━━━━━━━━━━━━ 3s 1ms/step - accuracy: 0.8795 - loss: 0.4194"],
               1875, 1, {"accuracy": 0.8795, "loss": 0.4194}),
    # fairseq: pipe cells (old) and key=value (new)
    "fairseq_cells": (["| epoch 001 | loss 5.43 | ppl 229.1 | wps 12345 | bsz 64 | num_updates 1000 | lr 0.0005"],
                      1000, 1, {"loss": 5.43, "ppl": 229.1, "wps": 12345.0, "lr": 0.0005}),
    "fairseq_kv": (["2021-03-05 10:00:11 | INFO | train_inner | epoch 001:    100 / 1563 loss=9.848, "
                    "nll_loss=9.612, ppl=782.7, wps=28514.4, ups=8.71, bsz=128, num_updates=100, lr=2.5e-05, "
                    "gnorm=2.232, wall=12"], 100, 1,
                   {"loss": 9.848, "nll_loss": 9.612, "ppl": 782.7, "wps": 28514.4, "ups": 8.71,
                    "lr": 2.5e-05, "gnorm": 2.232, "wall": 12.0}),
    # nanoGPT
    "nanogpt_eval": (["step 100: train loss 2.3456, val loss 2.4567"], 100, None,
                     {"train_loss": 2.3456, "val_loss": 2.4567}),
    "nanogpt_iter": (["iter 100: loss 2.3456, time 12.34ms, mfu 5.00%"], 100, None, {"loss": 2.3456, "mfu": 5.0}),
    "nanogpt_mfu_negative": (["iter 0: loss 4.2874, time 9841.32ms, mfu -100.00%"], 0, None,
                             {"loss": 4.2874, "mfu": -100.0}),
    # timm
    "timm_train": (["Train: 0 [ 100/1251 (  8%)]  Loss: 6.912 (6.93)  Time: 0.412s,  621.4/s  "
                    "(0.415s,  617.0/s)  LR: 1.000e-05  Data: 0.012 (0.015)"], 100, 0,
                   {"loss": 6.912, "lr": 1e-05, "data": 0.012}),
    "timm_test": (["Test: [   0/48]  Loss:  0.6689 (0.6689)  Acc@1: 85.9375 (85.9375)  Acc@5: 96.8750 (96.8750)"],
                  0, None, {"loss": 0.6689, "acc@1": 85.9375, "acc@5": 96.875}),
    # tqdm with a postfix
    "tqdm_postfix": (["100%|██████████| 50/50 [00:01<00:00, 30.1it/s, loss=0.345, acc=0.9]"], 50, None,
                     {"loss": 0.345, "acc": 0.9}),
    "tqdm_desc": (["Training:  45%|████▌     | 450/1000 [00:10<00:12, 44.10it/s, loss=0.512]"], 450, None,
                  {"loss": 0.512}),
    # YOLO's training table: a header of names, then a row of numbers
    "yolo": (["      Epoch    GPU_mem   box_loss   cls_loss   dfl_loss  Instances       Size",
              "      1/100      2.61G      1.215      1.437      1.198        215        640: 100%|██████████| "
              "8/8 [00:02<00:00,  3.21it/s]"], 8, 1, {"box_loss": 1.215, "cls_loss": 1.437, "dfl_loss": 1.198}),
    "table": (["epoch  train_loss  val_loss  val_acc", "   3      0.4120    0.5013   0.8650"], None, 3,
              {"train_loss": 0.412, "val_loss": 0.5013, "val_acc": 0.865}),
    # log prefixes around metrics
    "logging_prefix": (["2024-01-05 12:30:45,123 - INFO - epoch 3 step 1200 loss=0.1234"], 1200, 3, {"loss": 0.1234}),
    "clock_prefix": (["[12:30:45] loss: 0.5"], None, None, {"loss": 0.5}),
    "glog_prefix": (["I0105 12:30:45.123456 140000 trainer.py:42] loss = 0.25"], None, None, {"loss": 0.25}),
    "python_logging": (["INFO:root:loss: 0.5 acc: 98.5%"], None, None, {"loss": 0.5, "acc": 98.5}),
    "global_step": (["global_step=1234 loss=0.5"], 1234, None, {"loss": 0.5}),
    "slash_names": (["train/loss=0.5 val/acc=0.75"], None, None, {"train/loss": 0.5, "val/acc": 0.75}),
    "compact_colon": (["loss:0.5 acc:0.9 cuda:0 gpu_temp:71"], None, None, {"loss": 0.5, "acc": 0.9}),
    "qualified": (["Val Acc: 0.91 | Val Loss: 0.25 | grad norm: 1.2 | mean reward 12.5 +- 3.1"], None, None,
                  {"val_acc": 0.91, "val_loss": 0.25, "grad_norm": 1.2, "mean_reward": 12.5}),
    "pipes_and_percent": (["Epoch 1 | Batch 100/500 | Loss 0.123 | Acc 95.2%"], 100, 1, {"loss": 0.123, "acc": 95.2}),
}


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == pytest.approx(b[k]) for k in a)


@pytest.mark.parametrize("name", list(CASES))
def test_corpus_line(name):
    lines, step, epoch, values = CASES[name]
    got = last(*lines)
    assert _same(got.values, values), got.values
    assert (got.step, got.epoch) == (step, epoch)
    assert got.text == lines[-1]


# Lines whose numbers are not metrics: paths, clocks, versions, addresses, hex, URLs, tqdm timing,
# hyperparameters, tracebacks, prose.
NOT_METRICS = [
    "/data/run_3/ckpt-1000.pt",
    "saving to ./out/loss_0.5/",
    "Saving model checkpoint to ./out/checkpoint-500",
    r"C:\runs\loss=0.5\model.pt",
    "2024-01-05 12:30:45,123 INFO Starting training",
    "[12:30:45] Serving TensorBoard on localhost; to expose to the network, use a proxy",
    "2024-01-05T12:30:45.123Z commit a1b2c3d4e5",
    "torch 2.13.0",
    "CUDA 12.1",
    "torch==2.13.0 numpy==1.26.4",
    "Python version: 3.11.7",
    "torch 2.13.0+cu121, CUDA 12.1, cuDNN 8902, Python 3.11.7",
    "Listening on 192.168.1.10:29500",
    "MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 WORLD_SIZE=8 RANK=0 LOCAL_RANK=0",
    "host: 10.0.0.12",
    "ptr=0x7f3ac8001000 id=0xdeadbeef flags: 0x1f",
    "TensorBoard 2.15.1 at http://localhost:6006/ (Press CTRL+C to quit)",
    "wandb: View run at https://wandb.ai/me/proj/runs/3f2a9c1b?step=100&loss=0.5",
    "  0%|          | 0/50 [00:00<?, ?it/s]",
    "100%|██████████| 50/50 [00:01<00:00, 30.1it/s]",
    " 45%|████▌     | 45/100 [00:12<00:15,  3.52s/it]",
    "Downloading: 100%|██████████| 1.23G/1.23G [00:30<00:00, 41.0MB/s]",
    "Validation DataLoader 0: 100%|██████████| 79/79 [00:01<00:00, 61.2it/s]",
    "batch_size=64 num_workers=8 seed=42 world_size=8 local_rank=0 v_num=3",
    "Batch size: 64",
    "n_layer = 6",
    "max_iters = 5000",
    "found vocab_size = 65 (inside data/shakespeare_char/meta.pkl)",
    "tokens per iteration will be: 16,384",
    "number of parameters: 10.65M",
    "Total params: 11,689,512",
    "  Num examples = 25000",
    "  Gradient Accumulation steps = 1",
    "  Number of trainable parameters = 66955010",
    "GPU available: True (cuda), used: True",
    "TPU available: False, using: 0 TPU cores",
    "Using device: cuda:0",
    "LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES: [0]",
    'Traceback (most recent call last):',
    '  File "/home/user/train.py", line 42, in <module>',
    "RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 15.78 GiB total capacity)",
    "AssertionError: 0.5",
    "lightning_logs/version_0/checkpoints/epoch=3-step=400.ckpt",
    "Epoch 2: val_loss improved from 0.14520 to 0.10500, saving model to model.keras",
    "11.2 M    Trainable params",
    "deadbeef 0xff 1e3f",
    "it/s: 5.0 s/it=0.2",
    "Elapsed time: 12.3",
    "Epoch 00001: ReduceLROnPlateau reducing learning rate to 0.0001.",
]


@pytest.mark.parametrize("line", NOT_METRICS)
def test_not_metrics(line):
    got = last(line)
    assert got.values == {}
    assert got.text == line


def test_not_steps_in_paths_and_urls():
    for line in ("lightning_logs/version_0/checkpoints/epoch=3-step=400.ckpt",
                 "wandb: View run at https://wandb.ai/me/proj/runs/3f2a9c1b?step=100",
                 "Keras 1875/1875 [====] - 3s 1ms/step"):
        got = last(line)
        assert got.step is None and got.epoch is None, line


def test_corpus_file():
    """A long mixed log: exactly these series come out of it, and none from the noise at its end."""
    p = OutputParser()
    lines = feed_all(p, [CORPUS.read_bytes()])
    names = set().union(*(pl.values for pl in lines))
    assert names == {
        "acc@1", "acc@5", "accuracy", "average_loss", "box_loss", "cls_loss", "data", "dfl_loss",
        "eval_accuracy", "eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second",
        "gb_free", "gnorm", "grad_norm", "learning_rate", "loss", "loss_scale", "lr", "mfu", "nll_loss",
        "ppl", "time", "train_loss", "train_runtime", "train_samples_per_second", "train_steps_per_second",
        "train_wall", "ups", "val_accuracy", "val_loss", "wall", "wpb", "wps",
    }
    noise_from = next(i for i, pl in enumerate(lines) if pl.text.startswith("Traceback"))
    assert not any(pl.values for pl in lines[noise_from:])
    assert [pl.lineno for pl in lines] == list(range(1, len(lines) + 1))
    assert p.line_count == len(lines)


# --------------------------------------------------------------------------- the byte stream
def test_crlf_and_carriage_return_progress():
    p = OutputParser()
    out = feed_all(p, [b"\r  0%|          | 0/3 [00:00<?, ?it/s]\r 33%|###3      | 1/3 [00:00<00:00, loss=0.9]"
                       b"\r100%|##########| 3/3 [00:01<00:00, loss=0.7]\nloss: 1\r\nloss: 2\r\n"])
    assert [(pl.text[:4], pl.transient) for pl in out] == [
        ("  0%", True), (" 33%", True), ("100%", False), ("loss", False), ("loss", False)]
    assert [pl.values for pl in out] == [{}, {"loss": 0.9}, {"loss": 0.7}, {"loss": 1.0}, {"loss": 2.0}]
    assert [pl.step for pl in out] == [None, 1, 3, None, None]
    assert [pl.lineno for pl in out] == [1, 2, 3, 4, 5]


def test_cr_then_lf_in_the_next_chunk_is_one_line_end():
    a = feed_all(OutputParser(), [b"loss: 1\r", b"\nloss: 2\r", b"", b"\n"])
    b = feed_all(OutputParser(), [b"loss: 1\r\nloss: 2\r\n"])
    assert a == b and [pl.transient for pl in a] == [False, False]


def test_ansi_codes_are_stripped():
    raw = (b"\x1b[32mloss\x1b[0m: \x1b[1;31m0.5\x1b[0m \x1b[A\x1b[2K\x1b]8;;http://x.org\x1b\\link\x1b]8;;\x1b\\"
           b" acc=\x1b[38;5;208m0.25\x1b[m\x1b(B\x07\x08\n")
    (pl,) = OutputParser().feed(raw)
    assert pl.text == "loss: 0.5 link acc=0.25"
    assert pl.values == {"loss": 0.5, "acc": 0.25}


def test_invalid_utf8_is_replaced():
    (pl,) = OutputParser().feed(b"loss: 0.5 \xff\xfe caf\xc3\xa9 \xe2\x96\n")
    assert pl.text == "loss: 0.5 \ufffd\ufffd café \ufffd"
    assert pl.values == {"loss": 0.5}


def test_multibyte_character_split_across_chunks():
    data = "Epoch 0:  45%|████▌     | 450/1000 [00:10<00:12, train_loss=0.512]\n".encode()
    cut = data.index("█".encode()) + 1
    out = feed_all(OutputParser(), [data[:cut], data[cut:cut + 1], data[cut + 1:]])
    assert len(out) == 1 and out[0].text == data.decode().rstrip("\n")
    assert out[0].values == {"train_loss": 0.512}


def test_flush_returns_the_partial_line():
    p = OutputParser()
    assert p.feed(b"loss: 1\nloss: ") == [ParsedLine("loss: 1", None, None, {"loss": 1.0}, 1)]
    assert p.feed(b"2") == []
    tail = p.flush()
    assert tail == ParsedLine("loss: 2", None, None, {"loss": 2.0}, 2)
    assert p.flush() is None
    p.feed(b"100%|##| 2/2 [00:01<00:00, loss=0.7]\r")
    tail = p.flush()
    assert tail.transient and tail.values == {"loss": 0.7}


def test_long_line_is_capped_and_fast():
    """1 MB in one line, in one chunk and in 1000 chunks: capped to MAX_LINE, no quadratic work."""
    big = b"loss: 0.5 " + b"acc=0.1 x" * 120_000 + b"\nloss: 0.25\n"
    assert len(big) > 1_000_000
    one = OutputParser().feed(big)
    many = feed_all(OutputParser(), [big[i:i + 1000] for i in range(0, len(big), 1000)])
    assert one == many
    assert len(one[0].text) == MAX_LINE and one[0].values["loss"] == 0.5
    assert one[1].values == {"loss": 0.25}


@pytest.mark.parametrize("unit", ["a", "a ", "a=", "a: ", "1.", "1e", "-", "'a'", "a.b/c-", "loss ",
                                  "epoch ", "step ", "|", "0/", "[0/", "{", "\x1b[", "█"])
def test_pathological_lines_complete(unit):
    """A 1 MB line of one repeated unit: the cap keeps every regex linear on 4096 characters."""
    line = (unit * (1_000_000 // len(unit) + 1)).encode()
    (pl,) = OutputParser().feed(line + b"\n")
    assert len(pl.text) <= MAX_LINE
    OutputParser().parse_line((unit * (MAX_LINE // len(unit) + 1))[:MAX_LINE])


def test_line_counter():
    p = OutputParser()
    out = p.feed(b"a\n\nloss: 1\n")
    assert [pl.lineno for pl in out] == [1, 2, 3]
    assert out[1].text == "" and p.line_count == 3


def test_epoch_is_carried_to_later_lines():
    out = parse("Epoch 1/10", "1875/1875 [=====] - loss: 0.2", "Epoch 2/10", "some text", "loss: 0.1")
    assert [pl.epoch for pl in out] == [1, 1, 2, 2, 2]
    assert out[1].step == 1875 and out[4].step is None


def test_disabled():
    out = parse("loss: 0.5", "step 3: loss 1", enabled=False)
    assert [(pl.text, pl.step, pl.epoch, pl.values) for pl in out] == [
        ("loss: 0.5", None, None, {}), ("step 3: loss 1", None, None, {})]


# ------------------------------------------------------------------------------ --metric-regex
def test_regex_name_value_pairs():
    got = last("it 7 | a 1.5 | b -2e-3 | Val Loss 0.1", regex=r"\| (?P<name>[A-Za-z ]+) (?P<value>[-\d.e]+)")
    assert got.values == {"a": 1.5, "b": -2e-3, "val_loss": 0.1}


def test_regex_groups_named_after_metrics():
    rx = r"it (?P<step>\d+) .*?L=(?P<loss>[-\d.e]+)(?: acc=(?P<acc>[\d.]+)%)?"
    out = parse("it 7 foo L=0.25 acc=91.5%", "it 8 foo L=0.2", "loss: 0.5", regex=rx)
    assert [(pl.step, pl.values) for pl in out] == [
        (7, {"loss": 0.25, "acc": 91.5}), (8, {"loss": 0.2}), (None, {})]


def test_regex_epoch_group_and_bad_values():
    got = last("ep 3 loss nan! lr x", regex=r"ep (?P<epoch>\d+) loss (?P<loss>\S+?)! lr (?P<lr>\S+)")
    assert got.epoch == 3 and math.isnan(got.values["loss"]) and "lr" not in got.values


def test_regex_errors():
    with pytest.raises(re.error):
        OutputParser(regex="(?P<loss>")
    with pytest.raises(ValueError):
        OutputParser(regex=r"loss (\d+)")


# ------------------------------------------------------------------------------- properties
PIECES = [
    b"loss: 0.5", b"step 100: train loss 2.3456, val loss 2.4567", b"{'loss': 0.69, 'epoch': 0.01}",
    b"Epoch 1/10", b"1875/1875 [====] - loss: 0.2 - accuracy: 0.9", b"|", b" ", b"=",
    "100%|██████████| 50/50 [00:01<00:00, 30.1it/s, loss=0.345]".encode(), "é€😀 ".encode(),
    b"\r", b"\n", b"\r\n", b"\r\r", b"\x1b[31m", b"\x1b[0m", b"\x1b[2K\x1b[A", b"\xff", b"\xe2\x96",
    b"\x00\x08", b"\t", b"epoch  train_loss  val_loss", b"  3  0.41  0.50", b"-1.5e-3",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40), st.lists(st.integers(0, 10_000), max_size=12))
def test_chunk_boundaries_do_not_matter(pieces, cuts):
    data = b"".join(pieces)
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]
    assert feed_all(OutputParser(), chunks) == feed_all(OutputParser(), [data])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 17))
def test_any_bytes_any_chunking(data, size):
    whole = feed_all(OutputParser(), [data])
    split = feed_all(OutputParser(), [data[i:i + size] for i in range(0, len(data), size)])
    assert whole == split
    for pl in whole:
        assert "\n" not in pl.text and "\r" not in pl.text and "\x1b" not in pl.text
        assert all(isinstance(v, float) for v in pl.values.values())


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("loss acc=:|/.-eE0123456789 \t[]{}'\"%_epochstp")), max_size=200))
def test_any_text_parses(text):
    pl = OutputParser().parse_line(text)
    assert pl.text == text
    assert all(k == k.lower() and k not in {"step", "epoch", "batch_size"} for k in pl.values)
