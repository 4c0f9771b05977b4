"""v6: the speed changes compute what v5 computes."""

import pytest
import torch

from conftest import load_script, shrink


@pytest.mark.parametrize("batch, time, n_embd, n_head", [(1, 1, 8, 1), (2, 7, 16, 2), (3, 32, 48, 6), (2, 64, 64, 4)])
def test_fused_attention_equals_v5_naive_attention(batch, time, n_embd, n_head, monkeypatch):
    sizes = dict(block_size=64, n_embd=n_embd, n_head=n_head, dropout=0.0)
    v5 = shrink(load_script("v5"), monkeypatch, **sizes)
    v6 = shrink(load_script("v6"), monkeypatch, **sizes)
    torch.manual_seed(0)
    naive = v5.MultiHeadAttention(n_head, n_embd // n_head).eval()
    fused = v6.MultiHeadAttention(n_head, n_embd // n_head).eval()
    with torch.no_grad():  # the same weights: v5's per-head q, k, v stacked into v6's one projection
        for part, name in enumerate(["query", "key", "value"]):
            weight = torch.cat([getattr(head, name).weight for head in naive.heads])
            fused.qkv.weight[part * n_embd:(part + 1) * n_embd] = weight
        fused.proj.load_state_dict(naive.proj.state_dict())
    x = torch.randn(batch, time, n_embd)
    torch.testing.assert_close(fused(x), naive(x), rtol=0, atol=1e-5)


def test_learning_rate_warms_up_linearly_then_decays_by_cosine_to_min_lr(monkeypatch):
    v6 = shrink(load_script("v6"), monkeypatch, learning_rate=1.0, min_lr=0.1, warmup_iters=10, max_iters=110)
    assert v6.lr_at(0) == pytest.approx(0.1)
    assert v6.lr_at(9) == pytest.approx(1.0)
    assert v6.lr_at(10) == pytest.approx(1.0)
    assert v6.lr_at(60) == pytest.approx(0.55)  # halfway through the cosine
    assert v6.lr_at(110) == pytest.approx(0.1)
    decay = [v6.lr_at(step) for step in range(10, 111)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))


def test_optimizer_decays_weight_matrices_only(monkeypatch):
    v6 = shrink(load_script("v6"), monkeypatch, n_embd=16, n_head=2, n_layer=1)
    model = v6.GPTLanguageModel(11)
    groups = v6.configure_optimizer(model).param_groups
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decayed) == (p.dim() >= 2), name
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_validation_windows_cover_the_split_without_overlap(monkeypatch):
    v6 = shrink(load_script("v6"), monkeypatch, block_size=8)
    data = torch.arange(83)
    x, y = v6.eval_windows(data)
    assert x.shape == (10, 8)  # 82 targets hold ten whole windows
    assert torch.equal(x.flatten(), data[:80]) and torch.equal(y.flatten(), data[1:81])


def test_validation_loss_is_exact_not_sampled(monkeypatch):
    v6 = shrink(load_script("v6"), monkeypatch, block_size=8, batch_size=3, n_embd=16, n_head=2, n_layer=1)
    torch.manual_seed(0)
    model = v6.GPTLanguageModel(11)
    data = torch.randint(11, (200,))
    windows = v6.eval_windows(data)
    first = v6.estimate_loss(model, {"val": windows})["val"]
    assert v6.estimate_loss(model, {"val": windows})["val"] == first
    with torch.no_grad():  # the mean over every window at once, in one batch
        _, loss = model.eval()(*windows)
    assert first == pytest.approx(loss.item(), rel=1e-5)


def test_compile_flag_is_a_boolean_on_the_command_line():
    v6 = load_script("v6")
    v6.apply_overrides(["--compile=False"])
    assert v6.compile is False
    with pytest.raises(SystemExit) as exit_info:
        v6.apply_overrides(["--compile=no"])
    assert "expects a value of type bool" in exit_info.value.code

