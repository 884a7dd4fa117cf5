"""Module: registration, traversal, modes, state_dict, hooks, the module stack; Parameter."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import gradwell as gw
from gradwell.nn import BatchNorm1d, Dropout, Linear, Module, Parameter, ReLU, Sequential
from gradwell.nn.module import current_module


class Block(Module):
    def __init__(self):
        super().__init__()
        self.fc = Linear(3, 4, rng=0)
        self.bn = BatchNorm1d(4)
        self.scale = Parameter([2.0])
        self.register_buffer("steps", np.zeros(()))
        self.act = ReLU()

    def forward(self, x):
        return self.act(self.bn(self.fc(x))) * self.scale


class Net(Module):
    def __init__(self):
        super().__init__()
        self.layers = Sequential(Block(), Dropout(0.5, rng=0), Linear(4, 2, rng=1))

    def forward(self, x):
        return self.layers(x)


# --- Parameter -----------------------------------------------------------------------


def test_parameter_is_a_leaf_tensor_that_requires_grad():
    p = Parameter(np.arange(3.0))
    assert isinstance(p, gw.Tensor) and p.is_leaf and p.requires_grad
    assert p.dtype == np.float32  # float data takes the default float, as gw.tensor
    assert Parameter([1.0], dtype="float64").dtype == np.float64
    assert "Parameter containing" in repr(p)


def test_parameter_from_a_tensor_shares_its_array():
    t = gw.tensor([1.0, 2.0], dtype="float64")
    p = Parameter(t)
    assert p.data is t.data and p.dtype == np.float64


def test_parameter_rejects_integer_data():
    with pytest.raises(TypeError, match="floating-point"):
        Parameter(np.arange(3))


def test_ops_on_parameters_give_plain_tensors():
    p = Parameter([1.0, 2.0])
    y = p * 2
    assert type(y) is gw.Tensor and not y.is_leaf


# --- registration and traversal ------------------------------------------------------------


def test_named_parameters_have_dotted_names_module_by_module():
    # a module's own parameters come before its children's (PyTorch's order)
    names = [n for n, _ in Net().named_parameters()]
    assert names == [
        "layers.0.scale",
        "layers.0.fc.weight",
        "layers.0.fc.bias",
        "layers.0.bn.weight",
        "layers.0.bn.bias",
        "layers.2.weight",
        "layers.2.bias",
    ]
    assert len(list(Net().parameters())) == 7


def test_buffers_are_registered_apart_from_parameters():
    net = Net()
    buffer_names = [n for n, _ in net.named_buffers()]
    assert buffer_names == [
        "layers.0.steps",
        "layers.0.bn.running_mean",
        "layers.0.bn.running_var",
        "layers.0.bn.num_batches_tracked",
    ]
    param_ids = {id(p) for p in net.parameters()}
    assert not any(id(b) in param_ids for b in net.buffers())
    assert not any(b.requires_grad for b in net.buffers())


def test_named_modules_children_and_modules():
    net = Net()
    names = [n for n, _ in net.named_modules()]
    assert names == [
        "",
        "layers",
        "layers.0",
        "layers.0.fc",
        "layers.0.bn",
        "layers.0.act",
        "layers.1",
        "layers.2",
    ]
    assert [n for n, _ in net.named_children()] == ["layers"]
    assert list(net.children()) == [net.layers]
    assert list(net.modules())[0] is net and len(list(net.modules())) == 8


def test_shared_parameters_and_modules_are_listed_once():
    shared = Linear(2, 2, rng=0)
    seq = Sequential(shared, ReLU(), shared)
    assert len(list(seq.parameters())) == 2
    assert [n for n, _ in seq.named_modules()] == ["", "0", "1"]
    # state_dict names every place (so loading restores each), as PyTorch does
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_reassigning_and_deleting_attributes_updates_the_registries():
    m = Block()
    m.scale = Parameter([3.0, 4.0])
    assert dict(m.named_parameters(recurse=False))["scale"].shape == (2,)
    m.scale = None
    assert "scale" not in dict(m.named_parameters(recurse=False))
    del m.act
    assert "act" not in dict(m.named_children())
    with pytest.raises(TypeError, match="expected a gw.nn.Parameter or None"):
        m.fc.weight = gw.tensor([1.0])  # a plain tensor over a parameter: a bug
    m.steps = np.ones(())  # assigning to a buffer name replaces the buffer
    assert m.state_dict()["steps"] == 1.0


def test_assigning_before_super_init_says_what_to_do():
    class Broken(Module):
        def __init__(self):
            self.w = Parameter([1.0])

    with pytest.raises(AttributeError, match=r"super\(\)\.__init__\(\)"):
        Broken()


def test_forward_must_be_defined():
    with pytest.raises(NotImplementedError, match="forward"):
        Module()(1)


# --- modes and gradients -----------------------------------------------------------------------


def test_train_and_eval_propagate_to_every_submodule():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.layers.train(False)
    assert net.training and not net.layers[0].bn.training


def test_zero_grad_sets_none_or_zeros():
    net = Net()
    net(gw.randn(4, 3, rng=0)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_requires_grad_freezes_parameters():
    net = Net().requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_to_double_converts_parameters_and_float_buffers():
    net = Net().double()
    assert all(p.dtype == np.float64 for p in net.parameters())
    bn = net.layers[0].bn
    assert bn.running_mean.dtype == np.float64
    assert bn.num_batches_tracked.dtype == np.int64  # a count stays an integer
    assert net(gw.randn(4, 3, rng=0, dtype="float64")).dtype == np.float64


# --- state_dict --------------------------------------------------------------------------------


def test_state_dict_copies_arrays_and_round_trips():
    a, b = Net(), Net()
    a(gw.randn(8, 3, rng=1))  # moves the running statistics and the batch count
    sd = a.state_dict()
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    sd["layers.2.bias"][0] = 123.0  # a copy: the model is untouched
    assert a.layers[2].bias.numpy()[0] != 123.0
    sd = a.state_dict()
    result = b.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(x, y, err_msg=name)
    a.eval(), b.eval()
    x = gw.randn(5, 3, rng=2)
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


def test_load_state_dict_keeps_the_parameter_objects_and_dtypes():
    net = Net()
    weight = net.layers[2].weight
    sd = {k: v.astype(np.float64) for k, v in net.state_dict().items()}
    sd["layers.2.weight"] = np.ones((2, 4))
    net.load_state_dict(sd)
    assert net.layers[2].weight is weight and weight.dtype == np.float32
    np.testing.assert_array_equal(weight.numpy(), np.ones((2, 4)))


def test_strict_load_lists_missing_and_unexpected_keys_and_loads_nothing():
    net = Net()
    before = net.state_dict()
    sd = net.state_dict()
    sd["layers.2.weight"] = np.zeros((2, 4))
    del sd["layers.0.fc.bias"]
    sd["layers.9.weight"] = np.zeros(1)
    with pytest.raises(RuntimeError) as err:
        net.load_state_dict(sd)
    msg = str(err.value)
    assert "missing keys" in msg and "'layers.0.fc.bias'" in msg
    assert "unexpected keys" in msg and "'layers.9.weight'" in msg
    assert "nothing was loaded" in msg
    np.testing.assert_array_equal(net.layers[2].weight.numpy(), before["layers.2.weight"])


def test_non_strict_load_reports_the_keys_and_loads_the_rest():
    net = Net()
    sd = net.state_dict()
    del sd["layers.0.fc.bias"]
    sd["extra"] = np.zeros(1)
    sd["layers.2.bias"] = np.array([5.0, 6.0])
    result = net.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["layers.0.fc.bias"] and result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(net.layers[2].bias.numpy(), [5.0, 6.0])


def test_shape_mismatch_names_the_key_and_both_shapes_even_when_not_strict():
    net = Net()
    sd = net.state_dict()
    sd["layers.2.weight"] = np.zeros((3, 4))
    sd["layers.2.bias"] = np.array([7.0, 7.0])
    with pytest.raises(
        RuntimeError,
        match=r"'layers.2.weight': the model has shape \(2, 4\), "
        r"the state dict has \(3, 4\)",
    ):
        net.load_state_dict(sd, strict=False)
    assert not (net.layers[2].bias.numpy() == 7.0).any()  # all or nothing


def test_deepcopy_makes_an_independent_model():
    net = Net()
    clone = copy.deepcopy(net)
    clone.layers[2].weight.data[...] = 0
    assert net.layers[2].weight.numpy().any()
    assert [n for n, _ in clone.named_parameters()] == [n for n, _ in net.named_parameters()]


# --- repr -----------------------------------------------------------------------------------------


def test_repr_nests_like_pytorch():
    assert repr(Net()) == (
        "Net(\n"
        "  (layers): Sequential(\n"
        "    (0): Block(\n"
        "      (fc): Linear(in_features=3, out_features=4, bias=True)\n"
        "      (bn): BatchNorm1d(4, eps=1e-05, momentum=0.1, affine=True, "
        "track_running_stats=True)\n"
        "      (act): ReLU()\n"
        "    )\n"
        "    (1): Dropout(rate=0.5)\n"
        "    (2): Linear(in_features=4, out_features=2, bias=True)\n"
        "  )\n"
        ")"
    )


# --- hooks and the module stack -----------------------------------------------------------------


def test_forward_hook_sees_module_inputs_and_output_and_can_be_removed():
    net = Net()
    seen = []
    handle = net.layers[0].act.register_forward_hook(
        lambda m, inputs, out: seen.append((m, inputs[0].shape, out.shape))
    )
    net(gw.randn(4, 3, rng=0))
    assert seen == [(net.layers[0].act, (4, 4), (4, 4))]
    handle.remove()
    handle.remove()  # harmless
    net(gw.randn(4, 3, rng=0))
    assert len(seen) == 1


def test_forward_hook_returning_a_value_replaces_the_output():
    relu = ReLU()
    relu.register_forward_hook(lambda m, inputs, out: out * 0 + 7)
    np.testing.assert_array_equal(relu(gw.tensor([-1.0, 1.0])).numpy(), [7.0, 7.0])


def test_current_module_is_the_innermost_module_being_called():
    net = Net()
    seen = []
    for m in net.modules():
        m.register_forward_hook(lambda m, i, o: seen.append(current_module()))
    with gw.autograd.record() as tape:
        net(gw.randn(4, 3, rng=0))
    block = net.layers[0]
    assert seen[0] is block.fc and seen[-1] is net
    assert tape[0].scope is block.fc  # the recording seam's steps say where they ran
    assert current_module() is None


def test_the_module_stack_is_popped_when_forward_raises():
    net = Net()
    with pytest.raises(ValueError, match=r"linear in Linear\(in_features=3"):
        net(gw.randn(4, 5, rng=0))  # wrong number of features, deep inside
    assert current_module() is None
