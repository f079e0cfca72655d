"""Insights computed in the child (neurotop.trainer.insights) checked against values computed here,
independently, on models with known weights; their summaries stay bounded; the store keeps them
bounded too and raises the dead-layer alert once."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from neurotop.trainer import journal
from neurotop.trainer.insights import InsightProbe, pca_2d
from neurotop.trainer.monitor import Monitor
from neurotop.trainer.protocol import Gradients, Health, Latent, Signal, decode, dequantize, encode
from neurotop.tui.store import DEAD_ALERT, HISTORY_COLUMNS, History, RunStore
from neurotop.tui.widgets.latent import decode_latent


class Collect:
    """A stand-in Monitor: collects what the probe emits."""

    enabled = True

    def __init__(self):
        self.out = []
        self.seconds = 0.0

    def emit(self, msg):
        self.out.append(msg)

    def add_monitoring_time(self, seconds):
        self.seconds += seconds

    def of(self, kind, **match):
        return [m for m in self.out if isinstance(m, kind) and all(getattr(m, k) == v for k, v in match.items())]


def known_model():
    """5 → 8 (ReLU) → 6 (Sigmoid) → 4 (Tanh), seeded; three ReLU units forced dead (bias -100),
    one forced always on (a constant 2), two sigmoid units pushed against 1, one tanh unit stuck."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.Sigmoid(), nn.Linear(6, 4), nn.Tanh())
    with torch.no_grad():
        model[0].bias[:3] = -100.0
        model[0].weight[3] = 0.0
        model[0].bias[3] = 2.0
        model[2].bias[:2] = 6.0  # sigmoid ≈ 0.99…0.999: saturated, yet moving
        model[4].weight[0] = 0.0
        model[4].bias[0] = 0.0  # tanh unit 0 outputs exactly 0: stuck, so dead
    return model


def outputs(model, x):
    """Each layer's output, computed here without the probe."""
    out, h = {}, x
    with torch.no_grad():
        for i, layer in enumerate(model):
            h = layer(h)
            out[str(i)] = h.numpy().astype(np.float64)
    return out


def expected_health(values_per_snapshot, kind, margin=0.02, at=0.95, stuck=1e-4):
    """Dead and saturated counts by the module docstring's definitions, in numpy."""
    x = np.concatenate(values_per_snapshot, axis=0)  # every sample of the window
    n = x.shape[0]
    if kind == "rectifier":
        on = (x > 0).sum(axis=0)
        return int((on == 0).sum()), int((on >= at * n).sum())
    spread = x.max(axis=0) - x.min(axis=0)
    dead = spread <= stuck
    lo, hi = (0.0, 1.0) if kind == "sigmoid" else (-1.0, 1.0)
    bound = ((x <= lo + margin) | (x >= hi - margin)).sum(axis=0)
    return int(dead.sum()), int(((bound >= at * n) & ~dead).sum())


def test_dead_and_saturated_units_match_an_independent_count():
    model = known_model()
    x = torch.randn(64, 5, generator=torch.Generator().manual_seed(1))
    mon = Collect()
    probe = InsightProbe(mon, model, inputs=x, every=1, window=1, grad_every=None, latent=False)
    assert [s.name for s in probe.layers] == ["1", "3", "5"]
    assert probe.maybe(1)
    out = outputs(model, x)
    for layer, kind in (("1", "rectifier"), ("3", "sigmoid"), ("5", "tanh")):
        (msg,) = mon.of(Health, layer=layer)
        dead, saturated = expected_health([out[layer]], kind)
        assert (msg.dead, msg.saturated) == (dead, saturated), layer
        v = out[layer]
        assert msg.units == v.shape[1] and msg.rows == v.shape[1]
        assert msg.mean == pytest.approx(v.mean(), rel=1e-5, abs=1e-7)
        assert msg.std == pytest.approx(v.std(), rel=1e-4, abs=1e-6)
        assert msg.signal == pytest.approx(np.abs(v).mean(), rel=1e-5, abs=1e-7)
        means = dequantize(msg.means, msg.mean_lo, msg.mean_scale)
        np.testing.assert_allclose(means, v.mean(axis=0), atol=msg.mean_scale / 2 + 1e-6)
    # what the construction guarantees, beyond agreeing with the count above
    relu = mon.of(Health, layer="1")[0]
    assert relu.dead >= 3 and relu.saturated >= 1
    assert mon.of(Health, layer="3")[0].saturated >= 2
    assert mon.of(Health, layer="5")[0].dead >= 1
    (signal,) = mon.of(Signal)
    assert signal.layers == [str(i) for i in range(6)]
    for name, value in zip(signal.layers, signal.mean_abs):
        assert value == pytest.approx(np.abs(out[name]).mean(), rel=1e-5, abs=1e-7)


def test_dead_means_never_active_over_the_window():
    """A unit active in one snapshot of the window is not dead; once the window has passed
    without it firing, it is."""
    model = nn.Sequential(nn.Linear(1, 2), nn.ReLU())
    with torch.no_grad():
        model[0].weight[:] = torch.tensor([[1.0], [1.0]])
        model[0].bias[:] = torch.tensor([0.0, -10.0])  # unit 1 fires only for inputs above 10
    mon = Collect()
    probe = InsightProbe(mon, model, inputs=torch.tensor([[20.0], [1.0]]), every=1, window=2, grad_every=None,
                         latent=False, signal=False)
    probe.maybe(1)  # unit 1 fires on the first sample
    probe.inputs = torch.tensor([[1.0], [2.0]])
    probe.maybe(2)  # it does not fire now, but it did within the window
    probe.maybe(3)  # two snapshots without it: dead
    assert [m.dead for m in mon.of(Health)] == [0, 0, 1]
    assert [m.window for m in mon.of(Health)] == [1, 2, 2]


def test_a_wide_layer_is_summarised_to_a_bounded_message():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5000), nn.ReLU())
    with torch.no_grad():
        model[0].bias[:1234] = -50.0
    x = torch.randn(32, 4)
    mon = Collect()
    InsightProbe(mon, model, inputs=x, every=1, max_units=64, grad_every=None, latent=False).maybe(1)
    (msg,) = mon.of(Health)
    out = outputs(model, x)["1"]
    assert msg.units == 5000 and msg.rows == 64 and len(msg.means) == len(msg.spreads) == 64
    assert (msg.dead, msg.saturated) == expected_health([out], "rectifier")
    assert msg.dead >= 1234
    assert len(encode(msg)) < 600
    assert msg.mean == pytest.approx(out.mean(), rel=1e-4)


def test_gradient_norms_and_update_ratios_match_sgd_by_hand():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x, y = torch.randn(16, 3), torch.randn(16, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = Collect()
    probe = InsightProbe(mon, model, every=None, grad_every=1, latent=False)
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    grads = {name: math.sqrt(sum(float(p.grad.pow(2).sum()) for p in m.parameters())) for name, m in
             (("0", model[0]), ("2", model[2]))}
    weights = {name: math.sqrt(sum(float(p.detach().pow(2).sum()) for p in m.parameters())) for name, m in
               (("0", model[0]), ("2", model[2]))}
    probe.before_step(1)
    opt.step()
    probe.after_step(1)
    (msg,) = mon.of(Gradients)
    assert msg.layers == ["0", "2"]
    for i, name in enumerate(msg.layers):
        assert msg.grad_norm[i] == pytest.approx(grads[name], rel=1e-5)
        # plain SGD moves every parameter by lr × its gradient
        assert msg.update_ratio[i] == pytest.approx(0.1 * grads[name] / weights[name], rel=1e-4)
    assert decode(encode(msg)) == msg


def test_many_layers_are_grouped_and_norms_combine():
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(20)])
    mon = Collect()
    probe = InsightProbe(mon, model, inputs=torch.ones(3, 2), every=1, grad_every=1, max_layers=6, latent=False,
                         update_ratio=False)
    model(torch.ones(1, 2)).sum().backward()
    probe.before_step(1)
    probe.after_step(1)
    probe.maybe(1)
    (signal,) = mon.of(Signal)
    assert len(signal.layers) == len(signal.mean_abs) == 6 and signal.layers[-1] == "17…19"
    (msg,) = mon.of(Gradients)
    assert len(msg.layers) == 6 and msg.layers[0] == "0…3" and msg.update_ratio == []
    per_layer = [math.sqrt(sum(float(p.grad.pow(2).sum()) for p in m.parameters())) for m in model]
    index = [i * 6 // 20 for i in range(20)]
    for g in range(6):
        expected = math.sqrt(sum(per_layer[i] ** 2 for i in range(20) if index[i] == g))
        assert msg.grad_norm[g] == pytest.approx(expected, rel=1e-5)


def test_latent_projection_matches_an_independent_pca():
    torch.manual_seed(0)
    codes = torch.randn(120, 5) @ torch.diag(torch.tensor([5.0, 3.0, 1.0, 0.5, 0.1])) + 2.0
    labels = [i % 10 for i in range(120)]

    class Coder(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(5, 5)

        def encode(self, x):
            return x  # the latent is the input itself: a known point cloud

        def forward(self, x):
            return self.lin(x)

    mon = Collect()
    probe = InsightProbe(mon, Coder(), inputs=codes, labels=labels, every=None, grad_every=None, latent_every=1,
                         latent_points=100)
    probe.maybe(1)
    (msg,) = mon.of(Latent)
    assert msg.points == 100 and msg.dims == 5 and msg.labels == labels[:100] and msg.name == "encode"
    xs, ys = decode_latent(msg)
    # independently: eigenvectors of the covariance, each signed so its largest-|loading| is positive
    z = codes[:100].numpy().astype(np.float64)
    zc = z - z.mean(axis=0)
    eigval, eigvec = np.linalg.eigh(zc.T @ zc)
    order = np.argsort(eigval)[::-1]
    comps = eigvec[:, order[:2]].T
    for c in comps:
        if c[np.argmax(np.abs(c))] < 0:
            c *= -1
    expected = zc @ comps.T
    tol = [s * 0.51 + 1e-6 for s in msg.scale]
    np.testing.assert_allclose(xs, expected[:, 0], atol=tol[0])
    np.testing.assert_allclose(ys, expected[:, 1], atol=tol[1])
    np.testing.assert_allclose(msg.explained, eigval[order[:2]] / eigval.sum(), rtol=1e-4)
    # stable: the same model and batch give the same picture; the message stays small
    probe.maybe(2)
    assert mon.of(Latent)[1].x == msg.x and mon.of(Latent)[1].y == msg.y
    assert len(encode(msg)) < 1500


def test_pca_of_a_one_dimensional_latent_has_a_flat_second_axis():
    proj, explained = pca_2d(torch.arange(10.0).reshape(10, 1))
    assert proj.shape == (10, 2) and torch.all(proj[:, 1] == 0)
    assert proj[-1, 0] > 0 and float(explained[0]) == pytest.approx(1.0)


def test_disabled_monitor_costs_nothing_and_emits_nothing():
    class Off(Collect):
        enabled = False

    model = known_model()
    mon = Off()
    probe = InsightProbe(mon, model, inputs=torch.randn(4, 5), every=1, grad_every=1, latent_every=1)
    model(torch.randn(4, 5)).sum().backward()
    probe.before_step(1)
    probe.after_step(1)
    assert not probe.maybe(1) and mon.out == []


def test_new_messages_round_trip():
    msgs = [Health(step=3, layer="a", units=10, dead=2, saturated=1, mean=0.5, std=0.1, signal=0.5, kind="rectifier",
                   rows=2, means=b"\x00\xff", spreads=b"\x01\x02"),
            Gradients(step=3, layers=["a", "b"], grad_norm=[1.0, None], update_ratio=[1e-3, None]),
            Latent(step=3, points=1, x=b"\x00\x00", y=b"\xff\xff", lo=[0.0, 1.0], scale=[1.0, 2.0], labels=[7]),
            Signal(step=3, layers=["a"], mean_abs=[0.25])]
    for msg in msgs:
        assert decode(encode(msg)) == msg


# ---------------------------------------------------------------------------------- the store
def health(step, dead, units=10, layer="enc"):
    return Health(step=step, layer=layer, units=units, dead=dead, saturated=0, mean=0.1, std=0.2, signal=0.1,
                  rows=2, means=bytes([0, 255]), mean_lo=0.0, mean_scale=0.01, spreads=bytes([3, 4]))


def test_store_warns_once_when_a_layer_dies_and_again_when_it_recovers():
    store = RunStore()
    store.ingest([health(1, 2), health(2, 6), health(3, 9), health(4, 6)])
    warnings = store.take_notices()
    assert len(warnings) == 1 and warnings[0].severity == "warning" and "enc" in warnings[0].text
    assert store.insights.health.dead == {"enc"}
    assert [(m.step, m.kind) for m in store.metrics.markers] == [(2, "dead")]
    store.ingest([health(5, 3)])  # below the clearing threshold
    (recovered,) = store.take_notices()
    assert "recovered" in recovered.text and store.insights.health.dead == set()
    assert 6 / 10 > DEAD_ALERT
    layer = store.insights.health.layers["enc"]
    steps, values = layer.scalars.view()
    assert steps.tolist() == [1, 2, 3, 4, 5] and values[:, 0].tolist() == pytest.approx([0.2, 0.6, 0.9, 0.6, 0.3])
    np.testing.assert_allclose(layer.unit_means, [0.0, 2.55])


def test_store_history_is_bounded_and_covers_the_whole_run():
    store = RunStore()
    store.ingest([health(step, step % 10) for step in range(1, 20_001)])
    steps, values = store.insights.health.layers["enc"].scalars.view()
    assert len(steps) <= HISTORY_COLUMNS + 1 and steps[0] < 200 and steps[-1] == 20_000
    assert store.insights.health.layers["enc"].scalars.values.nbytes == HISTORY_COLUMNS * 5 * 4
    assert np.all(np.diff(steps) > 0)
    assert values[:, 0].mean() == pytest.approx(0.45, abs=0.02)  # merged, not dropped


def test_history_keeps_missing_values_apart():
    h = History(2, capacity=4)
    for step in range(1, 12):
        h.add(step, np.array([step, np.nan]))
    _, values = h.view()
    assert np.isnan(values[:, 1]).all() and np.isfinite(values[:, 0]).all()


def test_gradients_in_the_store():
    store = RunStore()
    store.ingest([Gradients(step=s, layers=["a", "b"], grad_norm=[s * 1.0, None], update_ratio=[1e-3, 2e-3])
                  for s in range(1, 6)])
    flow = store.insights.gradients.value
    steps, norms = flow.grad_norm.view()
    assert flow.layers == ["a", "b"] and steps.tolist() == [1, 2, 3, 4, 5]
    assert norms[:, 0].tolist() == [1, 2, 3, 4, 5] and np.isnan(norms[:, 1]).all()
    store.ingest([Gradients(step=6, layers=["c"], grad_norm=[1.0])])  # a new model: a new picture
    assert store.insights.gradients.value.layers == ["c"] and len(store.insights.gradients.value.grad_norm) == 1


# ------------------------------------------------------------------------- the demo, in-process
@pytest.mark.slow
def test_broken_demo_shows_a_dead_layer_in_its_journal(runs):
    from neurotop.trainer.demo.autoencoder import parse_args, train

    mon = train(parse_args(["--steps", "200", "--broken", "--insight-every", "50", "--latent-every", "100",
                            "--probe-every", "100", "--checkpoint-every", "0", "--val-every", "100"]))
    lines = (mon.run_dir / journal.JOURNAL).read_bytes().splitlines()
    msgs = [decode(line) for line in lines]
    store = RunStore()
    store.ingest(msgs)
    first = store.insights.health.layers["encoder.1"].latest
    assert first.units == 32 and first.dead >= 24  # three quarters start dead and stay so
    assert "encoder.1" in store.insights.health.dead
    assert {m.kind for m in store.metrics.markers} >= {"dead"}
    assert store.insights.gradients.value is not None and store.insights.gradients.value.layers == ["encoder.0", "encoder.2", "decoder.0",
                                                                      "decoder.2"]
    assert store.insights.latent.value is not None and store.insights.latent.value.points == 200 and len(store.insights.latent.value.labels) == 200
    assert store.insights.signal.value is not None and len(store.insights.signal.value.layers) == 7


def test_monitor_counts_notes_for_the_run_listing(runs):
    mon = Monitor(name="notes")
    mon.note("first")
    mon.note("a warning", kind="warning")
    mon.note("second")
    mon.close()
    assert journal.RunInfo.load(mon.run_dir).notes == 2
