"""v13: sampling with a KV cache gives v12's tokens within block_size, slides past it, and leaves training alone."""

import pytest
import torch

from conftest import generated, load_script, run_main, shrink, tiny_args

SIZES = dict(block_size=16, n_embd=32, n_head=4, n_layer=2, dropout=0.0)
VOCAB = 40


@pytest.fixture
def models(monkeypatch):
    """v12's and v13's models with the same (trained-looking, not zero) weights, in eval mode."""
    v12, v13 = (shrink(load_script(name), monkeypatch, **SIZES) for name in ("v12", "v13"))
    torch.manual_seed(0)
    slow = v12.GPTLanguageModel(VOCAB).eval()
    with torch.no_grad():
        for weight in slow.parameters():
            weight.normal_(0.0, 0.1)
    fast = v13.GPTLanguageModel(VOCAB).eval()
    fast.load_state_dict(slow.state_dict())  # the same parameters, under the same names
    return v13, slow, fast


def first_difference(a, b):
    """The first sampled step at which two runs differ, or None."""
    differ = (a != b).any(dim=0).nonzero()
    return None if len(differ) == 0 else differ[0].item()


def test_within_block_size_each_steps_logits_are_v12s(models):
    v13, slow, fast = models
    idx = torch.randint(VOCAB, (2, 5), generator=torch.Generator().manual_seed(1))
    caches, context = [v13.KVCache() for _ in fast.blocks], idx
    with torch.no_grad():
        for step in range(SIZES["block_size"] - idx.size(1)):
            expected = slow(idx)[0][:, -1]  # v12: the whole context again
            got = fast(context, caches=caches)[0][:, -1]  # v13: the prompt once, then the new token alone
            difference = (got - expected).abs().max().item()
            assert difference < 1e-4, f"step {step}: the logits differ by up to {difference:.2e}"
            context = expected.argmax(-1, keepdim=True)  # (2, 1)
            idx = torch.cat((idx, context), dim=1)


@pytest.mark.parametrize("temperature, top_k", [(1.0, 0), (0.8, 5), (1.5, 1)])
def test_within_block_size_sampling_draws_v12s_tokens(models, temperature, top_k):
    _, slow, fast = models
    prompt = torch.randint(VOCAB, (3, 4), generator=torch.Generator().manual_seed(2))
    samples = []
    for model in (slow, fast):
        torch.manual_seed(7)
        samples.append(generated(model, prompt, SIZES["block_size"] - 4, temperature=temperature, top_k=top_k)[:, 4:])
    assert first_difference(*samples) is None, f"the samples part at step {first_difference(*samples)}"


def test_the_prompt_runs_once_then_each_new_token_alone(models, monkeypatch):
    _, _, fast = models
    lengths = []
    real = fast.blocks[0].forward
    monkeypatch.setattr(fast.blocks[0], "forward", lambda x, cache=None: lengths.append(x.size(1)) or real(x, cache))
    list(fast.generate(torch.zeros((1, 6), dtype=torch.long), 10))  # each new token, as it is drawn
    assert lengths == [6] + [1] * 9  # the tenth token is sampled from the ninth step's logits


def test_past_block_size_the_cache_keeps_the_last_block_size_tokens_at_growing_positions(models):
    v13, _, fast = models
    caches = [v13.KVCache() for _ in fast.blocks]
    with torch.no_grad():
        fast(torch.zeros((1, 10), dtype=torch.long), caches=caches)
        for _ in range(20):
            fast(torch.zeros((1, 1), dtype=torch.long), caches=caches)
    assert all(cache.k.size(2) == cache.v.size(2) == SIZES["block_size"] for cache in caches)
    assert all(cache.position == 30 for cache in caches)


def test_a_long_prompt_is_cropped_to_block_size_as_v12_crops_it(models):
    _, slow, fast = models
    prompt = torch.randint(VOCAB, (1, 40), generator=torch.Generator().manual_seed(3))
    samples = []
    for model in (slow, fast):
        torch.manual_seed(9)
        samples.append(generated(model, prompt, 1))
    assert torch.equal(*samples)


def test_past_block_size_sampling_goes_on_with_valid_tokens(models):
    _, _, fast = models
    out = generated(fast, torch.zeros((2, 1), dtype=torch.long), 3 * SIZES["block_size"])
    assert out.shape == (2, 1 + 3 * SIZES["block_size"]) and 0 <= out.min() and out.max() < VOCAB


def test_training_computes_what_v12_computes(models):
    _, slow, fast = models
    x, y = torch.randint(VOCAB, (2, 2, 16), generator=torch.Generator().manual_seed(4))
    assert fast(x, y)[1].item() == pytest.approx(slow(x, y)[1].item(), abs=1e-6)


def test_a_checkpoint_of_v12_is_refused_in_one_line(tmp_path, small_text):
    """A checkpoint belongs to the script that saved it: v13 trains the same model, so it trains its own."""
    v12 = load_script("v12")
    args = tiny_args(v12, vocab_size=300, ckpt_path=tmp_path / "ckpt.pt") + [f"--data_path={small_text}"]
    assert run_main("v12", args)[0] == 0
    code, _, err = run_main("v13", [f"--ckpt_path={tmp_path / 'ckpt.pt'}", "--sample_only=True", "--device=cpu"])
    assert code == 1 and err == f"error: {tmp_path / 'ckpt.pt'}: a checkpoint of v12.py, not of v13.py\n"


def test_sample_only_continues_a_prompt_from_v13s_checkpoint(tmp_path, small_text):
    v13 = load_script("v13")
    assert run_main("v13", tiny_args(v13, vocab_size=300, ckpt_path=tmp_path / "ckpt.pt")
                    + [f"--data_path={small_text}"])[0] == 0
    code, out, err = run_main("v13", [f"--ckpt_path={tmp_path / 'ckpt.pt'}", "--sample_only=True", "--device=cpu",
                                      "--prompt=ROMEO:", "--max_new_tokens=40", "--temperature=0.8", "--top_k=20"])
    assert code == 0, err
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("cpu: "))  # the start-up line, then the sample
    assert lines[start + 1].startswith("ROMEO:")


def test_a_chunk_of_several_tokens_after_a_filled_cache_is_refused(models):
    """is_causal's mask is aligned top-left: right for a prompt in an empty cache, wrong for a chunk after it."""
    v13, _, fast = models
    caches = [v13.KVCache() for _ in fast.blocks]
    with torch.no_grad():
        fast(torch.zeros(1, 3, dtype=torch.long), caches=caches)  # the prompt
        fast(torch.zeros(1, 1, dtype=torch.long), caches=caches)  # one new token: allowed
        with pytest.raises(AssertionError, match="a chunk of several tokens met a filled cache"):
            fast(torch.zeros(1, 2, dtype=torch.long), caches=caches)


# ---- the sample, streamed -----------------------------------------------------

class Drawn:
    """A model whose generate yields the given tokens one by one, noting what was printed before each."""

    def __init__(self, tokens, capsys):
        self.tokens, self.capsys, self.printed = tokens, capsys, []

    def eval(self):
        return self

    def generate(self, context, max_new_tokens, temperature, top_k):
        for token in self.tokens:
            self.printed.append(self.capsys.readouterr().out)
            yield torch.tensor([[token]])


def streamed(monkeypatch, capsys, vocab, tokens, out_path=""):
    """v13's sample() of the tokens after the prompt "A" (token 0): what was printed before each token was drawn,
    and at the end."""
    v13 = load_script("v13")
    for name, value in dict(prompt="A", max_new_tokens=len(tokens), out_path=str(out_path)).items():
        monkeypatch.setattr(v13, name, value)
    model = Drawn(tokens, capsys)
    v13.sample(model, lambda text: [0], vocab, torch.device("cpu"))
    return model.printed + [capsys.readouterr().out]


def test_the_sample_is_printed_token_by_token_as_it_is_drawn(monkeypatch, capsys):
    printed = streamed(monkeypatch, capsys, [b"A", b"b", b"c"], [1, 2, 1])
    assert printed == ["A", "b", "c", "b\n"]  # the prompt before the first draw; each token before the next


def test_a_character_split_across_two_tokens_is_printed_whole_once_both_came(monkeypatch, capsys):
    e_acute = "é".encode("utf-8")  # b"\xc3\xa9": one character, two bytes, here two tokens
    printed = streamed(monkeypatch, capsys, [b"A", e_acute[:1], e_acute[1:]], [1, 2])
    assert printed == ["A", "", "é\n"]  # held back, never shown as U+FFFD halfway
    assert "\ufffd" not in "".join(printed)


def test_bytes_that_are_no_utf8_print_as_the_replacement_character(monkeypatch, capsys):
    """An undertrained model draws byte tokens in any order: a lone continuation byte is no character."""
    printed = streamed(monkeypatch, capsys, [b"A", b"\xa9", b"b", b"\xc3"], [1, 2, 3])
    assert "".join(printed) == "A\ufffdb\ufffd\n"  # the last: a character begun and never finished


def test_out_path_gets_the_whole_sample(monkeypatch, capsys, tmp_path):
    e_acute = "é".encode("utf-8")
    printed = streamed(monkeypatch, capsys, [b"A", e_acute[:1], e_acute[1:], b"!"], [1, 2, 3],
                       out_path=tmp_path / "sample.txt")
    assert (tmp_path / "sample.txt").read_text(encoding="utf-8") == "Aé!" == "".join(printed).rstrip("\n")
