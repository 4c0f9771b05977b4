"""v7: the training recipe — schedule, decay groups, clipping and the exact validation loss."""

import pytest
import torch
import torch.nn as nn

from conftest import load_script, shrink


def test_learning_rate_warms_up_linearly_then_decays_by_cosine_to_min_lr(monkeypatch):
    v7 = shrink(load_script("v7"), monkeypatch, learning_rate=1.0, min_lr=0.1, warmup_iters=10, max_iters=110)
    assert v7.lr_at(0) == pytest.approx(0.1)
    assert v7.lr_at(9) == pytest.approx(1.0)
    assert v7.lr_at(10) == pytest.approx(1.0)
    assert v7.lr_at(60) == pytest.approx(0.55)  # halfway through the cosine
    assert v7.lr_at(110) == pytest.approx(0.1)
    decay = [v7.lr_at(step) for step in range(10, 111)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))


def test_without_warmup_the_schedule_starts_at_the_peak(monkeypatch):
    v7 = shrink(load_script("v7"), monkeypatch, learning_rate=1.0, min_lr=0.0, warmup_iters=0, max_iters=100)
    assert v7.lr_at(0) == pytest.approx(1.0)
    assert v7.lr_at(100) == pytest.approx(0.0)


def test_optimizer_decays_the_linear_and_embedding_weights_only(monkeypatch):
    v7 = shrink(load_script("v7"), monkeypatch, n_embd=16, n_head=2, n_layer=1, weight_decay=0.1)
    model = v7.GPTLanguageModel(11)
    groups = v7.configure_optimizer(model).param_groups
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            weight_of_a_map = isinstance(module, (nn.Linear, nn.Embedding)) and name == "weight"
            assert decay.pop(id(p)) == (0.1 if weight_of_a_map else 0.0), (module, name)  # not LayerNorm, no bias
    assert decay == {}  # every parameter in exactly one group
    assert all(g["betas"] == (0.9, v7.beta2) for g in groups)


def test_a_training_step_clips_the_gradient_norm(monkeypatch, capsys):
    v7 = shrink(load_script("v7"), monkeypatch, grad_clip=1e-3, max_iters=1, eval_interval=1, dropout=0.0)
    torch.manual_seed(0)
    model = v7.GPTLanguageModel(11)
    data = torch.randint(11, (200,))
    v7.train(model, data[:180], data[180:])  # the gradients of the one step stay on the parameters
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert norm.item() == pytest.approx(1e-3, rel=1e-3)


def test_validation_windows_cover_the_split_without_overlap(monkeypatch):
    v7 = shrink(load_script("v7"), monkeypatch, block_size=8)
    data = torch.arange(83)
    x, y = v7.eval_windows(data)
    assert x.shape == (10, 8)  # 82 targets hold ten whole windows
    assert torch.equal(x.flatten(), data[:80]) and torch.equal(y.flatten(), data[1:81])


def test_validation_loss_is_exact_not_sampled(monkeypatch):
    v7 = shrink(load_script("v7"), monkeypatch, block_size=8, batch_size=3, n_embd=16, n_head=2, n_layer=1)
    torch.manual_seed(0)
    model = v7.GPTLanguageModel(11)
    data = torch.randint(11, (200,))
    windows = v7.eval_windows(data)
    first = v7.estimate_loss(model, {"val": windows})["val"]
    assert v7.estimate_loss(model, {"val": windows})["val"] == first
    with torch.no_grad():  # the mean over every window at once, in one batch
        _, loss = model.eval()(*windows)
    assert first == pytest.approx(loss.item(), rel=1e-5)
