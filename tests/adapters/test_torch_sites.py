"""Which sites the torch adapter finds, on which axis their units lie, and which output
it scores: checked on small models with a known answer, against hand-edited forwards."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import directionkit as dk  # noqa: E402
from directionkit.adapter import Interventions  # noqa: E402
from directionkit.adapters.torch import TorchAdapter  # noqa: E402
from directionkit.errors import (  # noqa: E402
    DirectionKitWarning,
    InvalidDataError,
    InvalidParameterError,
    SiteNotFoundError,
    UnsupportedModelError,
)
from directionkit.testing import AdapterTests  # noqa: E402

pytestmark = [pytest.mark.requires_torch, pytest.mark.usefixtures("one_torch_thread")]


def rows(n: int, features: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, features)).astype(np.float32)


class Functional(nn.Module):
    """Functional activations only, twice in one block, and a functional softmax out."""

    def __init__(self, softmax: bool = True) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(6, 5), nn.Linear(5, 4), nn.Linear(4, 3)
        self.softmax = softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        h = self.fc2(h).relu()  # a method call is the same function
        z = self.out(torch.tanh(h) + 0.0 * F.relu(h))
        return F.softmax(z, dim=-1) if self.softmax else z


class Swish(nn.Module):
    """An activation class nobody registered anywhere: found by what it does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class Scale(nn.Module):
    """Parameter-free and element-wise, but linear: not an activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * x


def test_functional_activations_are_sites_named_after_their_caller() -> None:
    torch.manual_seed(0)
    adapter = TorchAdapter(Functional(), example_input=rows(2))
    assert list(adapter.sites) == ["relu()", "relu()#1", "tanh()", "relu()#2"]
    assert all(s.n_units == 4 for n, s in adapter.sites.items() if n != "relu()")
    assert adapter.site_ops["tanh()"] == "tanh()"
    assert adapter.output_kind == "probabilities"  # F.softmax at the end of forward


def test_ablating_a_functional_site_equals_a_hand_edited_forward() -> None:
    torch.manual_seed(0)
    net = Functional(softmax=False).eval()
    x = rows(5)
    adapter = TorchAdapter(net, example_input=x[:2])
    mask = np.array([[True, False, True, False, False], [False] * 5])
    out = adapter.run(x, Interventions.zero_ablate(adapter.sites, {"relu()": mask})).logits
    with torch.no_grad():
        t = torch.from_numpy(x)
        h = torch.relu(net.fc1(t)) * torch.from_numpy((~mask[0]).astype(np.float32))
        h = net.fc2(h).relu()
        want = net.out(torch.tanh(h) + 0.0 * F.relu(h)).numpy()
    np.testing.assert_allclose(out[0], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1], adapter.run(x).logits[0], rtol=1e-5, atol=1e-6)


def test_a_functional_softmax_is_scored_by_its_log_in_torch_and_onnx(tmp_path: Any) -> None:
    pytest.importorskip("onnxscript")
    from directionkit.adapters.onnx import OnnxAdapter

    torch.manual_seed(0)
    net = Functional().eval()
    x = rows(40)
    y = np.arange(40) % 3
    with torch.no_grad():
        p = net(torch.from_numpy(x)).double().numpy()
    want = -np.log(p[np.arange(40), y]).mean()  # the cross-entropy of probabilities
    path = tmp_path / "functional.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.from_numpy(x[:2]),), str(path), dynamo=True,
                          dynamic_shapes=({0: torch.export.Dim("batch")},))  # fmt: skip
    for model in (net, str(path)):
        result = dk.analyze(model, (x, y), metrics=[], progress=False)
        assert float(result["loss"]) == pytest.approx(want, rel=1e-5)
        assert result.attrs["output_kind"] == "probabilities"
    assert list(OnnxAdapter(path).sites) == list(TorchAdapter(net, example_input=x[:2]).sites)


def test_activation_modules_are_found_by_behaviour_not_by_a_list_of_classes() -> None:
    net = nn.Sequential(nn.Linear(6, 5), Swish(), nn.Linear(5, 5), Scale(), nn.Dropout(0.5),
                        nn.Identity(), nn.Linear(5, 3))  # fmt: skip
    adapter = TorchAdapter(net, example_input=rows(2))
    assert list(adapter.sites) == ["1"]  # Swish; not the linear Scale, Dropout, Identity
    assert adapter.site_ops["1"] == "Swish"


def test_the_activation_over_class_scores_is_part_of_the_output_not_a_site() -> None:
    # SqueezeNet's head: a ReLU over the class maps, then pooling; and a final Sigmoid
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten())  # fmt: skip
    adapter = TorchAdapter(net, example_input=np.zeros((2, 2, 6, 6), np.float32))
    assert list(adapter.sites) == ["1"]
    sigmoid = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3), nn.Sigmoid())
    adapter = TorchAdapter(sigmoid, example_input=rows(2))
    assert list(adapter.sites) == ["1"] and adapter.output_kind == "sigmoid-probabilities"


class ChannelsLast(nn.Module):
    """A ConvNeXt-style block: conv, permute to (B, H, W, C), LayerNorm, Linear, GELU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.norm = nn.LayerNorm(3)
        self.up = nn.Linear(3, 8)
        self.act = nn.GELU()
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.up(self.norm(self.conv(x).permute(0, 2, 3, 1))))
        return self.head(h.mean(dim=(1, 2)))


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 2, 5, 6)).astype(np.float32)


def test_channels_last_units_are_channels_not_rows() -> None:
    torch.manual_seed(0)
    net = ChannelsLast().eval()
    adapter = TorchAdapter(net, example_input=images(2))
    (site,) = adapter.sites.values()
    assert (site.n_units, site.shape, site.axis, site.kind) == (8, (5, 6, 8), 2, "conv")
    assert site.axis_from == "Linear"
    x = images(4)
    recorded = adapter.run(x, record=["act"]).activations["act"]
    with torch.no_grad():
        a = net.act(net.up(net.norm(net.conv(torch.from_numpy(x)).permute(0, 2, 3, 1))))
    np.testing.assert_allclose(recorded, a.mean(dim=(1, 2)).numpy(), rtol=1e-5, atol=1e-6)
    mask = np.zeros((1, 8), bool)
    mask[0, [1, 6]] = True
    out = adapter.run(x, Interventions.zero_ablate(adapter.sites, {"act": mask})).logits[0]
    with torch.no_grad():
        keep = torch.from_numpy((~mask[0]).astype(np.float32))
        want = net.head((a * keep).mean(dim=(1, 2))).numpy()  # a channel, at every position
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


class TestTorchChannelsLastContract(AdapterTests):
    def make_adapter(self) -> TorchAdapter:
        torch.manual_seed(0)
        return TorchAdapter(ChannelsLast(), example_input=self.make_input(1))

    def make_input(self, batch: int) -> np.ndarray:
        return images(batch, seed=batch)


class Tokens(nn.Module):
    """A token model: embeddings (B, T, D), a functional GELU on a Linear, mean over T."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.ff = nn.Linear(6, 7)
        self.head = nn.Linear(7, 3)

    def forward(self, ids: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        h = F.gelu(self.ff(self.embed(ids)))
        if scale is not None:
            h = h * scale[:, None, None]
        return self.head(h.mean(dim=1))


class TestTorchTokensContract(AdapterTests):
    def make_adapter(self) -> TorchAdapter:
        torch.manual_seed(0)
        return TorchAdapter(Tokens(), example_input=self.make_input(1))

    def make_input(self, batch: int) -> np.ndarray:
        return np.random.default_rng(batch).integers(0, 20, size=(batch, 5))


def test_token_sites_have_units_on_the_feature_axis_and_tokens_as_positions() -> None:
    torch.manual_seed(0)
    adapter = TorchAdapter(Tokens(), example_input=np.zeros((2, 5), np.int64))
    (site,) = adapter.sites.values()
    assert (site.name, site.n_units, site.shape, site.axis, site.kind) == (
        "gelu()", 7, (5, 7), 1, "dense",
    )  # fmt: skip
    # token ids of another length run too (axis 1 of an integer input is a length)
    assert adapter.run(np.zeros((3, 9), np.int64)).logits.shape == (1, 3, 3)


def test_other_forward_arguments_come_from_inputs() -> None:
    torch.manual_seed(0)
    net = Tokens().eval()
    ids = np.random.default_rng(0).integers(0, 20, size=(4, 5))
    def twos(x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x),), 2.0)

    fixed = TorchAdapter(net, example_input=ids[:2], inputs={"scale": np.full(2, 2.0, np.float32)})
    made = TorchAdapter(net, example_input=ids, inputs={"scale": twos})
    whole = TorchAdapter(net, example_input=ids, inputs=lambda x: {"scale": twos(x)})
    with torch.no_grad():
        want = net(torch.from_numpy(ids), torch.full((4,), 2.0)).numpy()
    np.testing.assert_allclose(fixed.run(ids[:2]).logits[0], want[:2], rtol=1e-5, atol=1e-6)
    for adapter in (made, whole):
        np.testing.assert_allclose(adapter.run(ids).logits[0], want, rtol=1e-5, atol=1e-6)
        iv = Interventions.zero_ablate(adapter.sites, {"gelu()": np.eye(7, dtype=bool)[:3]})
        together = adapter.run(ids, iv).logits  # M rows: the extra argument repeats with them
        alone = np.concatenate([adapter.run(ids, iv.rows(r, r + 1)).logits for r in range(3)])
        np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_a_missing_forward_argument_is_named_not_taken_for_a_bad_shape() -> None:
    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.relu(x + h))

    with pytest.raises(UnsupportedModelError, match=r"pass the others with inputs="):
        TorchAdapter(TwoInputs(), example_input=rows(2))
    with pytest.raises(UnsupportedModelError, match=r"TorchScript.*forward\(.*Tensor h"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script's own
            scripted = torch.jit.script(TwoInputs())
        TorchAdapter(scripted, example_input=rows(2))
    h = np.zeros(6, np.float32)
    adapter = TorchAdapter(TwoInputs(), example_input=rows(2), inputs={"h": h})
    assert list(adapter.sites) == ["relu()"]


def test_sites_by_module_path_input_class_and_predicate() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    x = rows(5)
    by_path = TorchAdapter(net, sites=["2", "4:input"], example_input=x[:2])
    assert list(by_path.sites) == ["2", "4:input"]
    assert by_path.sites["2"].n_units == 4 and by_path.sites["4:input"].n_units == 4
    # the Linear's output, zeroed, is the Tanh's input zeroed: tanh(0) = 0 after it
    mask = np.ones((1, 4), bool)
    out = by_path.run(x, Interventions.zero_ablate(by_path.sites, {"2": mask})).logits[0]
    with torch.no_grad():
        want = net[4](torch.zeros(5, 4)).numpy()
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)
    out = by_path.run(x, Interventions.zero_ablate(by_path.sites, {"4:input": mask})).logits[0]
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)
    assert list(TorchAdapter(net, sites=[nn.Linear], example_input=x[:2]).sites) == ["0", "2", "4"]
    chosen = TorchAdapter(net, sites=[lambda path, m: isinstance(m, nn.Tanh)], example_input=x)
    assert list(chosen.sites) == ["3"]
    with pytest.raises(SiteNotFoundError, match=r"'nope'.*any module path.*'0', '1', '2'"):
        TorchAdapter(net, sites=["nope"], example_input=x[:2])


class Heads(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 5), nn.ReLU())
        self.embedding, self.scores = nn.Linear(5, 8), nn.Linear(5, 3)
        self.kind = kind

    def forward(self, x: torch.Tensor) -> Any:
        h = self.body(x)
        if self.kind == "dict":
            return {"embedding": self.embedding(h), "logits": self.scores(h)}
        if self.kind == "ordered":
            return OrderedDict(embedding=self.embedding(h), scores=self.scores(h))
        return self.embedding(h), self.scores(h)


def test_dict_tuple_and_model_output_scores() -> None:
    x = rows(4)
    torch.manual_seed(0)
    named = Heads("dict").eval()
    adapter = TorchAdapter(named, example_input=x)
    assert adapter.output_description == "output['logits']"
    with torch.no_grad():
        want = named.scores(named.body(torch.from_numpy(x))).numpy()
    np.testing.assert_allclose(adapter.run(x).logits[0], want, rtol=1e-6)
    for kind in ("ordered", "tuple"):
        with pytest.raises(UnsupportedModelError, match=r"cannot tell which.*Pass output="):
            TorchAdapter(Heads(kind), example_input=x)
        chosen = TorchAdapter(Heads(kind), example_input=x, output=1)
        assert chosen.run(x).logits.shape == (1, 4, 3)
    by_call = TorchAdapter(Heads("tuple"), example_input=x, output=lambda out: out[1])
    assert by_call.run(x).logits.shape == (1, 4, 3)
    with pytest.raises(InvalidParameterError, match=r"'output' parameter names 'nope'"):
        TorchAdapter(named, example_input=x, output="nope")


def test_huggingface_model_outputs_are_read_at_their_logits() -> None:
    transformers = pytest.importorskip("transformers.modeling_outputs")
    from tests import zoo

    zoo.torchvision()  # transformers imports it

    class HF(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.out = nn.Linear(6, 5), nn.Linear(5, 3)

        def forward(self, x: torch.Tensor) -> Any:
            logits = self.out(torch.relu(self.fc(x)))
            return transformers.SequenceClassifierOutput(loss=None, logits=logits)

    adapter = TorchAdapter(HF(), example_input=rows(2))
    assert adapter.output_description == "output['logits']"
    assert adapter.run(rows(3)).logits.shape == (1, 3, 3)


def test_probabilities_by_their_values_are_taken_as_such_with_a_warning() -> None:
    class HandMade(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.out = nn.Linear(6, 5), nn.Linear(5, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = self.out(torch.relu(self.fc(x))).exp()
            return z / z.sum(dim=1, keepdim=True)

    with pytest.warns(DirectionKitWarning, match="probabilities by their values"):
        adapter = TorchAdapter(HandMade(), example_input=rows(4))
    assert adapter.output_kind == "probabilities"
    assert "sums to one" in adapter.assumptions[0]


def test_an_unknown_unit_axis_is_a_stated_guess_or_given() -> None:
    class Raw(nn.Module):  # an activation on the input itself: no layer tells the axis
        def __init__(self) -> None:
            super().__init__()
            self.out = nn.Linear(12, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(torch.relu(x).flatten(1))

    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
    with pytest.warns(DirectionKitWarning, match=r"unit axis of site 'relu\(\)'.*unit_axes="):
        guessed = TorchAdapter(Raw(), example_input=x)
    assert guessed.sites["relu()"].axis_from == "guess"
    given = TorchAdapter(Raw(), example_input=x, unit_axes={"relu()": 0})
    assert (given.sites["relu()"].n_units, given.sites["relu()"].axis_from) == (3, "given")
    with pytest.raises(InvalidParameterError, match="'unit_axes' entry of site"):
        TorchAdapter(Raw(), example_input=x, unit_axes={"relu()": 5})


def test_a_model_without_sites_is_told_what_it_has_and_how_to_name_one() -> None:
    net = nn.Sequential(nn.Linear(6, 5), nn.LayerNorm(5), nn.Linear(5, 3))
    with pytest.raises(UnsupportedModelError, match=r"Module classes it ran: LayerNorm, Linear"):
        TorchAdapter(net, example_input=rows(2))
    assert list(TorchAdapter(net, sites=["1"], example_input=rows(2)).sites) == ["1"]


def test_wrong_inputs_still_say_the_input_does_not_fit() -> None:
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    with pytest.raises(InvalidDataError, match="does not fit the model"):
        TorchAdapter(net, example_input=rows(2, features=7))


def test_probing_a_module_leaves_its_state_and_the_models_mode_alone() -> None:
    class Observer(nn.Module):  # a parameter-free module with state: a running maximum
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("peak", torch.zeros(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.peak.copy_(torch.maximum(self.peak, x.abs().max()))
            return x

    net = nn.Sequential(nn.Linear(6, 5), Observer(), nn.ReLU(), nn.Linear(5, 3)).train()
    x = rows(4)
    with torch.no_grad():
        net(torch.from_numpy(x))
    peak = float(net[1].peak)
    adapter = TorchAdapter(net, example_input=x)
    assert list(adapter.sites) == ["2"]  # the observer is linear: not a site
    assert float(net[1].peak) == peak  # the probe's synthetic inputs (up to 8) left no trace
    assert all(m.training for m in net.modules())


def test_an_input_site_is_the_first_tensor_argument() -> None:
    class Gate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, scale: float | None, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.relu(x))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gate = Gate()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.gate(None, x)

    net = Net()
    adapter = TorchAdapter(net, sites=["gate:input"], example_input=rows(2))
    assert adapter.sites["gate:input"].n_units == 6
    mask = np.ones((1, 6), bool)
    out = adapter.run(rows(3), Interventions.zero_ablate(adapter.sites, {"gate:input": mask}))
    with torch.no_grad():  # x zeroed, not the None before it
        want = net.gate.fc(torch.zeros(3, 6)).numpy()
    np.testing.assert_allclose(out.logits[0], want, atol=1e-6)


def test_names_in_inputs_that_forward_does_not_take_are_refused_or_warned() -> None:
    torch.manual_seed(0)
    ids = np.random.default_rng(0).integers(0, 20, size=(4, 5))
    with pytest.raises(InvalidParameterError, match=r"names \['sclae'\].*\['ids', 'scale'\]"):
        TorchAdapter(Tokens(), example_input=ids, inputs={"sclae": np.ones(4, np.float32)})

    class Swallows(nn.Module):  # as transformers' forward(**kwargs)
        def __init__(self) -> None:
            super().__init__()
            self.inner = Tokens()

        def forward(self, ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            return self.inner(ids)

    with pytest.warns(DirectionKitWarning, match=r"\['atention_mask'\].*\*\*kwargs"):
        TorchAdapter(Swallows(), example_input=ids, inputs={"atention_mask": np.ones((4, 5))})


def test_a_module_returning_a_tuple_is_refused_as_a_site_and_unreached_sites_fail() -> None:
    class GRUNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = nn.GRU(6, 8, batch_first=True)
            self.fc = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.gru(x)
            return self.fc(torch.relu(out[:, -1]))

    x = np.random.default_rng(0).normal(size=(4, 5, 6)).astype(np.float32)
    with pytest.raises(InvalidParameterError, match=r"'gru' is module GRU whose output is not"):
        TorchAdapter(GRUNet(), sites=["gru"], example_input=x)
    head = TorchAdapter(GRUNet(), sites=["fc:input"], example_input=x)
    assert head.sites["fc:input"].n_units == 8

    class Branches(nn.Module):  # a forward that takes another path for other inputs
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.out = nn.Linear(6, 4), nn.Linear(6, 4), nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.a(x)) if x.sum() > 0 else torch.tanh(self.b(x))
            return self.out(h)

    adapter = TorchAdapter(Branches(), example_input=np.ones((2, 6), np.float32))
    iv = Interventions.zero_ablate(adapter.sites, {"relu()": np.ones((1, 4), bool)})
    with pytest.raises(UnsupportedModelError, match=r"called tanh\(\) where it called relu"):
        adapter.run(-np.ones((2, 6), np.float32), iv)
    modules = nn.ModuleDict({"a": nn.Sequential(nn.Linear(6, 4), nn.ReLU()),
                             "b": nn.Sequential(nn.Linear(6, 4), nn.Tanh())})  # fmt: skip

    class ModuleBranches(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.paths, self.out = modules, nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.paths["a" if x.sum() > 0 else "b"](x))

    adapter = TorchAdapter(ModuleBranches(), example_input=np.ones((2, 6), np.float32))
    iv = Interventions.zero_ablate(adapter.sites, {"paths.a.1": np.ones((1, 4), bool)})
    with pytest.raises(UnsupportedModelError, match=r"\['paths.a.1'\] were not reached"):
        adapter.run(-np.ones((2, 6), np.float32), iv)


def test_unit_axes_naming_no_site_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match=r"names \['1x'\].*sites are \['1'\]"):
        TorchAdapter(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)),
                     example_input=rows(2), unit_axes={"1x": 0})  # fmt: skip
