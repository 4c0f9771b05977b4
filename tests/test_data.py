"""Data handling: tokenizer, split, batches, and the bigram model against the count table."""

import torch
import torch.nn.functional as F

from conftest import ROOT, batch_drawer, load_script, shrink


def test_encode_decode_round_trips_all_of_input_txt(character_script):
    text = (ROOT / "input.txt").read_text(encoding="utf-8")
    encode, decode, vocab_size = character_script.build_tokenizer(text)
    ids = encode(text)
    assert vocab_size == len(set(text))
    assert min(ids) == 0 and max(ids) == vocab_size - 1
    assert decode(ids) == text


def test_split_keeps_the_first_ninety_percent_for_training(script):
    data = torch.arange(1000)
    train_data, val_data = script.split_data(data)
    assert torch.equal(train_data, data[:900]) and torch.equal(val_data, data[900:])


def test_get_batch_targets_are_the_inputs_shifted_by_one(script):
    data = torch.arange(100)  # every window of consecutive integers shows the shift
    x, y = batch_drawer(script)(data)
    assert x.shape == y.shape == (script.batch_size, script.block_size)
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(y - x, torch.ones_like(x))


def test_get_batch_draws_windows_from_the_whole_split(script):
    data = torch.arange(script.block_size + 3)  # only three windows fit
    draw = batch_drawer(script)
    starts = {draw(data)[0][i, 0].item() for _ in range(50) for i in range(script.batch_size)}
    assert starts == {0, 1, 2}


def test_bigram_with_its_defaults_reaches_the_count_table_optimum(monkeypatch, capsys):
    """The learned table ends close to the maximum-likelihood bigram counted from the training split."""
    module = shrink(load_script("bigram"), monkeypatch, batch_size=32, block_size=8, eval_iters=2)
    text = (ROOT / "input.txt").read_text(encoding="utf-8")
    encode, _, vocab_size = module.build_tokenizer(text)
    train_data, val_data = module.split_data(torch.tensor(encode(text)))

    counts = torch.zeros(vocab_size, vocab_size)
    counts.index_put_((train_data[:-1], train_data[1:]), torch.ones(len(train_data) - 1), accumulate=True)
    log_probs = (counts + 1).log() - (counts + 1).sum(1, keepdim=True).log()  # add-one smoothing
    table_loss = -log_probs[train_data[:-1], train_data[1:]].mean().item()

    torch.manual_seed(module.seed)
    model = module.BigramLanguageModel(vocab_size)
    module.train(model, train_data, val_data)  # max_iters, learning_rate, batch shape: the defaults
    with torch.no_grad():
        logits = model.token_embedding_table.weight[train_data[:-1]]
        model_loss = F.cross_entropy(logits, train_data[1:]).item()
    assert table_loss - 0.005 < model_loss < table_loss + 0.03
