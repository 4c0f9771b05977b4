"""v10: byte-level BPE, against a plain-Python reference of the same algorithm, and v10's runs.

Run as a script, `python tests/test_bpe.py [VOCAB_SIZE ...]`, it times train_bpe against that reference on 200,000
characters of input.txt's train split, then on all of it, and encoding input.txt, on one thread as the tests run."""

import functools
import random
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import load_script, run_main, step_lines, tiny_args

NAME = "v10"
v10 = load_script(NAME)
UNICODE = ("Crème brûlée, naïve café — déjà vu. 東京都の天気は晴れです。東京都 東京 "
           "😀😀👍🏽 👨‍👩‍👧 🇫🇷🇫🇷 e\u0301e\u0301 a\u0308\u0323 Ελληνικά Ελληνικά русский русский")


# ---- the reference: minbpe's BasicTokenizer, one pair at a time ------------

def pair_counts(ids):
    """Adjacent pairs, overlaps counted; a dict keeps the order in which pairs first occur."""
    counts = {}
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge_reference(ids, pair, new):
    out, i = [], 0
    while i < len(ids):
        if ids[i:i + 2] == list(pair):
            out.append(new)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_reference(text, vocab_size):
    ids, merges = list(text.encode("utf-8")), []
    for new in range(256, vocab_size):
        if len(ids) < 2:
            break
        counts = pair_counts(ids)
        merges.append(max(counts, key=counts.get))  # the first pair with the top count
        ids = merge_reference(ids, merges[-1], new)
    return merges


def encode_reference(text, merges):
    """minbpe's encode: again and again, merge the present pair of the lowest rank."""
    ranks = {pair: 256 + i for i, pair in enumerate(merges)}
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        pair = min(pair_counts(ids), key=lambda p: ranks.get(p, float("inf")))
        if pair not in ranks:
            break
        ids = merge_reference(ids, pair, ranks[pair])
    return ids


def random_texts():
    rng = random.Random(1234)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 300)))
            for alphabet in ("ab", "abc", "ab ", "aab\n", "é€a") for _ in range(3)]


@functools.cache
def unicode_tokenizer():
    return v10.build_tokenizer(v10.train_bpe(UNICODE, 320))


# ---- training the tokenizer --------------------------------------------------

def test_the_wikipedia_example_merges_the_commonest_pair_first():
    merges = v10.train_bpe("aaabdaaabac", 259)
    # (a, a) occurs 4 times, overlaps counted; then (256, a) and (a, b) tie at 2 and (256, a) comes first
    assert merges == [(97, 97), (256, 97), (257, 98)]
    encode, decode, vocab = v10.build_tokenizer(merges)
    assert len(vocab) == 259 and vocab[256:] == [b"aa", b"aaa", b"aaab"]  # each token's bytes
    assert encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert decode([258, 100, 258, 97, 99]) == "aaabdaaabac"


@pytest.mark.parametrize("text, tokens", [("aaaa", [256, 256]), ("aaa", [256, 97]), ("aaaaa", [256, 256, 97]),
                                          ("baaab", [98, 256, 97, 98])])
def test_a_run_is_merged_left_to_right_without_overlap(text, tokens):
    merges = v10.train_bpe(text, 257)
    assert merges == [(97, 97)]
    assert v10.build_tokenizer(merges)[0](text) == tokens


@pytest.mark.parametrize("text, first", [("abcdabcd", (97, 98)), ("cdabcdab", (99, 100)),
                                         ("xycdabcdab", (99, 100))])
def test_a_tie_goes_to_the_pair_that_occurs_first(text, first):
    assert v10.train_bpe(text, 257) == [first]


@pytest.mark.parametrize("text", random_texts() + [UNICODE, "aaaaa"])
def test_the_merges_are_the_references(text):
    assert v10.train_bpe(text, 300) == train_reference(text, 300)


def test_the_merges_of_a_page_of_input_txt_are_the_references(small_text):
    text = small_text.read_text(encoding="utf-8")[:5000]
    assert v10.train_bpe(text, 320) == train_reference(text, 320)


def test_merges_are_pairs_of_plain_ints():
    assert all(type(a) is int and type(b) is int for a, b in v10.train_bpe("hello hello", 260))


def test_training_stops_early_when_fewer_than_two_tokens_remain():
    assert v10.train_bpe("ab", 300) == [(97, 98)]
    assert v10.train_bpe("a", 300) == [] and v10.train_bpe("", 300) == []


def test_vocab_size_256_learns_no_merge():
    assert v10.train_bpe("hello world", 256) == []


# ---- encoding and decoding ---------------------------------------------------

@pytest.mark.parametrize("s", ["", "a", "Crème brûlée", "東京都", "😀👍🏽👨‍👩‍👧🇫🇷", "e\u0301\u0301", UNICODE, UNICODE[::-1]])
def test_decode_of_encode_gives_back_any_unicode_text(s):
    encode, decode, _ = unicode_tokenizer()
    assert decode(encode(s)) == s


def test_encode_gives_the_tokens_of_the_lowest_rank_first_reference():
    merges = v10.train_bpe(UNICODE + " ".join(random_texts()), 340)
    encode, _, _ = v10.build_tokenizer(merges)
    for s in random_texts() + [UNICODE, "aaaaaaa", "", "z"]:
        assert encode(s) == encode_reference(s, merges)


def test_without_merges_the_tokens_are_the_utf8_bytes():
    encode, _, vocab = v10.build_tokenizer([])
    assert vocab == [bytes([i]) for i in range(256)] and encode("hé") == list("hé".encode("utf-8"))


def test_decoding_bytes_that_are_not_utf8_gives_the_replacement_character():
    assert v10.build_tokenizer([])[1]([0xFF, 0xFE, 65]) == "\ufffd\ufffdA"


# ---- v10's runs --------------------------------------------------------------

def args(tmp_path, small_text, **overrides):
    return tiny_args(v10, **{"vocab_size": 300, "ckpt_path": tmp_path / "ckpt.pt", **overrides}) + [
        f"--data_path={small_text}"]


def test_a_tiny_run_learns_its_tokenizer_on_the_train_split_only(tmp_path, small_text):
    code, out, err = run_main(NAME, args(tmp_path, small_text))
    assert code == 0, err
    text = small_text.read_text(encoding="utf-8")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert state["merges"] == v10.train_bpe(text[:int(0.9 * len(text))], 300)
    assert out.splitlines()[1].startswith("300 tokens: ") and len(step_lines(out)) == 3  # after the start-up line


def test_bits_per_character_are_the_val_nll_over_the_val_characters(tmp_path, small_text):
    _, out, _ = run_main(NAME, args(tmp_path, small_text))
    text = small_text.read_text(encoding="utf-8")
    val_text = text[int(0.9 * len(text)):]
    encode, _, _ = v10.build_tokenizer(v10.train_bpe(text[:int(0.9 * len(text))], 300))
    line = step_lines(out)[-1]
    nats_per_token = float(line.split("val loss ")[1].split()[0])
    bits = float(line.split("(")[1].split(" bits/char")[0])
    assert bits == pytest.approx(nats_per_token * len(encode(val_text)) / len(val_text) / 0.693147, abs=2e-3)


def test_sample_only_decodes_without_the_text_and_takes_a_prompt_it_never_saw(tmp_path, small_text):
    assert run_main(NAME, args(tmp_path, small_text))[0] == 0
    code, out, err = run_main(NAME, [f"--ckpt_path={tmp_path / 'ckpt.pt'}", "--sample_only=True", "--device=cpu",
                                     "--prompt=日本 🎉", "--max_new_tokens=10", f"--data_path={tmp_path / 'gone'}"])
    assert code == 0, err
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("cpu: "))  # the start-up line, then the sample
    assert lines[start + 1].startswith("日本 🎉")


def test_a_vocab_size_beyond_what_the_text_yields_is_a_one_line_error(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("a" * 900 + "0123456789" * 10)  # the train split is one run of a: it ends as one token
    code, out, err = run_main(NAME, args(tmp_path, data, vocab_size=400))
    merges = v10.train_bpe("a" * 900, 400)
    assert code == 1 and err == (f"error: the training text yields {256 + len(merges)} tokens only;"
                                 " pass a smaller --vocab_size\n")
    assert not (tmp_path / "ckpt.pt").exists()


def test_a_vocab_size_that_needs_more_merges_than_the_text_has_bytes_is_refused_before_any_merge(tmp_path, small_text):
    code, _, err = run_main(NAME, args(tmp_path, small_text, vocab_size=1_000_000))
    assert code == 1 and err == "error: --vocab_size=1000000 needs more merges than the training text has bytes\n"


@pytest.mark.parametrize("prompt", ["caf\udce9", "\udcff"])  # how Python reads bytes of argv that are not UTF-8
def test_a_prompt_that_is_not_utf8_is_refused_before_the_work(prompt, tmp_path, small_text):
    code, out, err = run_main(NAME, args(tmp_path, small_text, prompt=prompt))
    assert code == 1 and err == "error: --prompt is not UTF-8 text\n" and out == ""


def test_a_vocab_size_below_256_is_a_one_line_error(tmp_path, small_text):
    code, _, err = run_main(NAME, args(tmp_path, small_text, vocab_size=100))
    assert code == 1 and err == "error: --vocab_size=100: vocab_size must be a whole number below 2**31, at least 256\n"


def test_a_text_that_is_not_utf8_is_a_one_line_error(tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"caf\xe9 " * 100)
    code, _, err = run_main(NAME, args(tmp_path, data))
    assert code == 1 and err == f"error: cannot read {data}: not UTF-8 text\n"
    assert not (tmp_path / "ckpt.pt").exists()


def test_a_checkpoint_of_v9_is_refused_in_one_line(tmp_path, small_text):
    v9 = load_script("v9")
    assert run_main("v9", tiny_args(v9, ckpt_path=tmp_path / "ckpt.pt") + [f"--data_path={small_text}"])[0] == 0
    before = (tmp_path / "ckpt.pt").read_bytes()
    for mode in ("--sample_only=True", "--resume=True"):
        code, _, err = run_main(NAME, args(tmp_path, small_text) + [mode])
        assert code == 1 and err == f"error: {tmp_path / 'ckpt.pt'}: a checkpoint of v9.py, not of v10.py\n"
    assert (tmp_path / "ckpt.pt").read_bytes() == before


def timed(what, function, *args):
    start = time.perf_counter()
    result = function(*args)
    print(f"{what}: {time.perf_counter() - start:.2f} s", flush=True)
    return result


if __name__ == "__main__":  # times, not tests
    text = (Path(v10.__file__).parent / "input.txt").read_text(encoding="utf-8")
    train_text, val_text = v10.split_data(text)
    same = timed("plain Python, 200,000 characters, 512", train_reference, train_text[:200_000], 512)
    assert timed("train_bpe, the same", v10.train_bpe, train_text[:200_000], 512) == same  # the same merges
    for vocab_size in map(int, sys.argv[1:] or [512]):
        merges = timed(f"train_bpe, train split, {vocab_size}", v10.train_bpe, train_text, vocab_size)
        encode, _, _ = v10.build_tokenizer(merges)
        timed(f"encode, all of input.txt ({vocab_size})", encode, text)
        print(f"{len(val_text) / len(encode(val_text)):.3f} characters per token on the val split")
