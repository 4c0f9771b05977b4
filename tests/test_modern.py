"""v11's modern block (RoPE, RMSNorm and QK-norm, ReLU^2, no biases, zero-initialised output projections) and
v12's Muon, checked piece by piece."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import MODERN_SCRIPTS, load_script, run_main, run_training, shrink, step_lines, tiny_args

SIZES = dict(block_size=16, n_embd=32, n_head=4, n_layer=2, dropout=0.0, batch_size=2)


@pytest.fixture(params=MODERN_SCRIPTS)
def modern(request, monkeypatch):
    return shrink(load_script(request.param), monkeypatch, **SIZES)


def placed(vector, position, length=48):
    """A (1, 1, length, hs) sequence that is zero but for vector at position."""
    x = torch.zeros(1, 1, length, len(vector))
    x[0, 0, position] = vector
    return x


def score(rotate, q, k, i, j):
    """q at position i against k at position j, once both are turned by RoPE."""
    return (rotate(placed(q, i))[0, 0, i] @ rotate(placed(k, j))[0, 0, j]).item()


# ---- RoPE ---------------------------------------------------------------------

def test_a_query_and_a_key_score_alike_wherever_they_stand_at_the_same_distance():
    rotate = load_script("v11").rotate
    q, k = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    for i, j in [(5, 2), (17, 0), (3, 3)]:
        for shift in (1, 9, 30):
            assert score(rotate, q, k, i + shift, j + shift) == pytest.approx(score(rotate, q, k, i, j), abs=1e-4)
    assert score(rotate, q, k, 9, 2) != pytest.approx(score(rotate, q, k, 5, 2), abs=1e-3)  # distance matters


def test_rope_turns_without_stretching_and_leaves_position_0_alone():
    rotate = load_script("v11").rotate
    x = torch.randn(2, 3, 20, 8, generator=torch.Generator().manual_seed(1))
    turned = rotate(x)
    torch.testing.assert_close(turned.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(turned[:, :, 0], x[:, :, 0])


def test_ropes_worked_example_one_pair_at_position_3_turns_by_3_radians():
    turned = load_script("v11").rotate(placed(torch.tensor([1.0, 0.0]), 3, length=4))
    torch.testing.assert_close(turned[0, 0, 3], torch.tensor([math.cos(3), math.sin(3)]))


def test_the_model_has_no_position_table_and_no_bias(modern):
    model = modern.GPTLanguageModel(11)
    assert sum(isinstance(m, nn.Embedding) for m in model.modules()) == 1  # the tokens' only
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Linear))


# ---- RMSNorm and QK-norm --------------------------------------------------------

def test_every_norm_is_rmsnorm_and_divides_by_the_root_mean_square(modern):
    model = modern.GPTLanguageModel(11)
    norms = [m for m in model.modules() if isinstance(m, (nn.RMSNorm, nn.LayerNorm))]
    assert len(norms) == 2 * modern.n_layer + 1 and all(isinstance(m, nn.RMSNorm) for m in norms)
    norm = norms[0]
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)  # a trained gain, not the initial ones
    x = torch.randn(3, 5, modern.n_embd)
    eps = torch.finfo(x.dtype).eps  # nn.RMSNorm's default
    torch.testing.assert_close(norm(x), x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * norm.weight)


def test_queries_and_keys_reach_rope_with_unit_rms(modern, monkeypatch):
    seen = []
    real = modern.rotate
    monkeypatch.setattr(modern, "rotate", lambda x, *start: seen.append(x) or real(x, *start))
    model = modern.GPTLanguageModel(11)
    with torch.no_grad():
        for weight in model.parameters():
            weight.normal_(0.0, 1.0)  # activations of any size
        model(torch.randint(11, (2, 16)))
    assert len(seen) == 2 * modern.n_layer  # q and k of every block
    for x in seen:
        torch.testing.assert_close(x.pow(2).mean(-1), torch.ones(x.shape[:-1]), atol=1e-4, rtol=0)


# ---- the MLP and the initialisation ----------------------------------------------

def test_the_mlp_is_relu_squared(modern):
    mlp = modern.FeedForward(modern.n_embd).eval()
    with torch.no_grad():
        mlp.proj.weight.normal_(0.0, 0.02)
    x = torch.randn(2, 5, modern.n_embd)
    torch.testing.assert_close(mlp(x), mlp.proj(F.relu(mlp.up(x)) ** 2))


def test_each_block_starts_as_the_identity(modern):
    torch.manual_seed(0)
    model = modern.GPTLanguageModel(11).eval()
    x = y = torch.randn(2, 16, modern.n_embd)
    for block in model.blocks:
        y = block(y)
    torch.testing.assert_close(y, x)
    projections = [w for name, w in model.named_parameters() if name.endswith("proj.weight")]
    assert len(projections) == 2 * modern.n_layer and all(torch.count_nonzero(w) == 0 for w in projections)


def test_the_model_runs_under_bf16_autocast_as_on_a_gpu(modern):
    """q and k, normalised and turned, must reach attention in the dtype of v: a mismatch fails here."""
    model = modern.GPTLanguageModel(11)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, loss = model(torch.randint(11, (2, 16)), torch.randint(11, (2, 16)))
    assert logits.dtype == torch.bfloat16 and math.isfinite(loss.item())


# ---- Muon (v12) -----------------------------------------------------------------

def test_muon_takes_the_matrices_inside_the_blocks_and_adamw_all_else_once(monkeypatch):
    v12 = shrink(load_script("v12"), monkeypatch, **SIZES)
    model = v12.GPTLanguageModel(11)
    adamw, muon = v12.configure_optimizers(model)
    assert isinstance(adamw, torch.optim.AdamW) and isinstance(muon, v12.Muon)
    owners = {}
    for optimizer in (adamw, muon):
        for group in optimizer.param_groups:
            for p in group["params"]:
                assert id(p) not in owners  # in exactly one optimizer, one group
                owners[id(p)] = (optimizer, group["weight_decay"])
    parts = {id(p): group["parts"] for group in muon.param_groups for p in group["params"]}
    for name, p in model.named_parameters():
        if name.startswith("blocks.") and p.dim() == 2:
            assert owners.pop(id(p))[0] is muon, name
            assert parts[id(p)] == (3 if name.endswith("qkv.weight") else 1), name  # q, k and v: three matrices
        else:
            assert owners.pop(id(p)) == (adamw, v12.weight_decay if p.dim() == 2 else 0.0), name
    assert owners == {}


def test_a_muon_step_moves_a_matrix_along_an_orthogonalised_gradient():
    """Newton-Schulz sets every singular value of the step near 1 (between about 0.5 and 1.5), whatever the
    gradient's: its directions all learn at one rate."""
    v12 = load_script("v12")
    weight = nn.Parameter(torch.zeros(16, 32))
    weight.grad = torch.randn(16, 1) @ torch.randn(1, 32) * 100 + torch.randn(16, 32)  # one direction dominates
    v12.Muon([weight], lr=1 / (0.2 * 32 ** 0.5), weight_decay=0.0, momentum=0.0).step()  # lr: AdamW's RMS undone
    singular = torch.linalg.svdvals(weight.detach())
    assert singular.min() > 0.3 and singular.max() < 1.6


@pytest.mark.parametrize("parts", [1, 3])
def test_muon_by_hand_steps_as_torchs_muon_each_matrix_apart(parts, monkeypatch):
    """The same settings (Nesterov momentum, five Newton-Schulz steps in bfloat16, AdamW's RMS, decoupled decay),
    five steps of changing gradients: a weight of `parts` matrices stacked moves as torch.optim.Muon moves each."""
    v12 = load_script("v12")
    monkeypatch.setattr(v12, "dtype", "bfloat16")  # torch's Muon orthogonalises in bfloat16, whatever the device
    torch.manual_seed(0)
    start = torch.randn(8 * parts, 24)
    weight, matrices = nn.Parameter(start.clone()), [nn.Parameter(m.clone()) for m in start.chunk(parts)]
    hand = v12.Muon([{"params": [weight], "parts": parts}], lr=0.02, weight_decay=0.1)
    torchs = torch.optim.Muon(matrices, lr=0.02, weight_decay=0.1, adjust_lr_fn="match_rms_adamw")
    for _ in range(5):
        grad = torch.randn(8 * parts, 24)
        weight.grad = grad.clone()
        for p, g in zip(matrices, grad.chunk(parts)):
            p.grad = g.clone()
        hand.step()
        torchs.step()
    stacked = torch.cat([p.detach() for p in matrices])
    torch.testing.assert_close(weight.detach(), stacked, rtol=0, atol=2e-3)  # bfloat16's rounding
    assert not torch.equal(weight.detach(), start)


def test_one_schedule_sets_both_optimizers(monkeypatch):
    v12 = shrink(load_script("v12"), monkeypatch, **SIZES, max_iters=5, eval_interval=10, warmup_iters=2,
                 learning_rate=2e-3, ckpt_path="")
    made = []
    real = v12.configure_optimizers
    monkeypatch.setattr(v12, "configure_optimizers", lambda model: made.extend(real(model)) or made)
    data = torch.arange(400) % 11
    run_training(v12, v12.GPTLanguageModel(11), data[:360], data[360:])
    adamw, muon = made
    assert [g["lr"] for g in adamw.param_groups + muon.param_groups] == pytest.approx([v12.lr_at(4)] * 4)
    assert v12.lr_at(4) < 2e-3  # the last step's, on the cosine below the peak


def test_v12_stopped_and_resumed_prints_the_unstopped_runs_step_lines(tmp_path, small_text, monkeypatch):
    v12 = load_script("v12")
    args = tiny_args(v12, max_iters=8, batch_size=16, vocab_size=300, dropout=0.1) + [f"--data_path={small_text}"]
    code, whole, err = run_main("v12", args + [f"--ckpt_path={tmp_path / 'whole.pt'}"])
    assert code == 0, err
    code, first, _ = run_main("v12", args + [f"--ckpt_path={tmp_path / 'ckpt.pt'}"], monkeypatch, stop_after=5)
    assert code == 130
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)["optimizer"]
    assert len(saved) == 2 and all(optimizer["state"] for optimizer in saved)  # AdamW's and Muon's moments
    code, second, err = run_main("v12", args + [f"--ckpt_path={tmp_path / 'ckpt.pt'}", "--resume=True"])
    assert code == 0, err
    assert step_lines(first)[:-1] + step_lines(second) == step_lines(whole)  # to the last printed digit
