"""v6: the speed changes compute what v5 computes."""

import pytest
import torch

from conftest import load_script, shrink, v5_weights_for_v6

SIZES = dict(batch_size=4, block_size=8, n_embd=16, n_head=2, n_layer=2, dropout=0.0, eval_iters=2)


def v5_and_v6_with_the_same_weights(monkeypatch, vocab_size=11, **sizes):
    v5 = shrink(load_script("v5"), monkeypatch, **{**SIZES, **sizes})
    v6 = shrink(load_script("v6"), monkeypatch, **{**SIZES, **sizes})
    torch.manual_seed(0)
    naive = v5.GPTLanguageModel(vocab_size)
    fast = v6.GPTLanguageModel(vocab_size)
    fast.load_state_dict(v5_weights_for_v6(naive.state_dict()))
    return v5, naive, v6, fast


@pytest.mark.parametrize("batch, time, n_embd, n_head", [(1, 1, 8, 1), (2, 7, 16, 2), (3, 32, 48, 6), (2, 64, 64, 4)])
def test_fused_attention_equals_v5_naive_attention(batch, time, n_embd, n_head, monkeypatch):
    _, naive, _, fast = v5_and_v6_with_the_same_weights(monkeypatch, block_size=64, n_embd=n_embd,
                                                        n_head=n_head, n_layer=1)
    naive_attention, fast_attention = naive.blocks[0].attention, fast.blocks[0].attention
    x = torch.randn(batch, time, n_embd)
    torch.testing.assert_close(fast_attention(x), naive_attention(x), rtol=0, atol=1e-5)


def test_v6_gathers_the_batches_v5_draws_from_the_same_seed(monkeypatch):
    v5 = shrink(load_script("v5"), monkeypatch, **SIZES)
    v6 = shrink(load_script("v6"), monkeypatch, **SIZES)
    data = torch.randint(50, (500,))
    torch.manual_seed(3)
    expected = v5.get_batch(data)
    torch.manual_seed(3)
    for got, want in zip(v6.get_batch(data), expected):
        assert torch.equal(got, want)


def test_v6_trains_the_run_v5_trains(monkeypatch, capsys):
    """Same weights, same seed, float32 on the CPU: the same step lines to rounding."""
    text = "a b c d e f g h i j " * 40
    v5, naive, v6, fast = v5_and_v6_with_the_same_weights(monkeypatch, len(set(text)), max_iters=20, eval_interval=10)
    encode, _, _ = v5.build_tokenizer(text)
    train_data, val_data = v5.split_data(torch.tensor(encode(text)))
    losses = []
    for module, model in ((v5, naive), (v6, fast)):
        torch.manual_seed(1)
        module.train(model, train_data, val_data)
        lines = [line.split(" |")[0] for line in capsys.readouterr().out.splitlines()]
        losses.append([[float(w) for w in line.replace(",", "").split() if w[0].isdigit() and "." in w]
                       for line in lines])
    assert len(losses[0]) == 3
    torch.testing.assert_close(torch.tensor(losses[1]), torch.tensor(losses[0]), rtol=0, atol=2e-4)


@pytest.mark.parametrize("context_length", [1, 13])
def test_v6_samples_the_tokens_v5_samples_from_the_same_weights_and_seed(context_length, monkeypatch):
    """In float32 on the CPU, before the context fills block_size and after it is cropped."""
    _, naive, _, fast = v5_and_v6_with_the_same_weights(monkeypatch, vocab_size=30)
    context = torch.randint(30, (2, context_length), generator=torch.Generator().manual_seed(5))
    torch.manual_seed(7)
    expected = naive.eval().generate(context, max_new_tokens=25)
    torch.manual_seed(7)
    assert torch.equal(fast.eval().generate(context, max_new_tokens=25), expected)


def test_autocast_is_off_on_the_cpu():
    with load_script("v6").autocast(torch.device("cpu")):
        assert (torch.randn(2, 2) @ torch.randn(2, 2)).dtype == torch.float32


def test_compile_flag_is_a_boolean_hyperparameter():
    v6 = load_script("v6")
    v6.parse_args(["--compile=False"])
    assert v6.compile is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_v6_compiled_trains_close_to_v5(monkeypatch, capsys):
    """bf16 and a compiled step on the GPU: the same run as v5's to within bf16's noise."""
    text = "a b c d e f g h i j " * 40
    v5, naive, v6, fast = v5_and_v6_with_the_same_weights(monkeypatch, len(set(text)), max_iters=20, eval_interval=10)
    encode, _, _ = v5.build_tokenizer(text)
    data = torch.tensor(encode(text)).cuda()
    losses = []
    for module, model in ((v5, naive), (v6, fast)):
        torch.manual_seed(1)
        module.train(model.cuda(), *module.split_data(data))
        losses.append([float(line.split("val loss ")[1].split()[0]) for line in capsys.readouterr().out.splitlines()])
    torch.testing.assert_close(torch.tensor(losses[1]), torch.tensor(losses[0]), rtol=0, atol=0.05)
