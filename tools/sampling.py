"""v13's KV cache, measured: sampling speed against v12's, and what the sliding cache costs in loss.

    python tools/sampling.py speed [--tokens=2000]
    python tools/sampling.py loss CHECKPOINT.pt [--tokens=2000]

speed: v12's and v13's models at their default sizes (6 layers of 384, block_size 256, vocab_size 512), with the
same random weights, each sample --tokens tokens from one start token on the CPU: milliseconds per token, and
whether the two samples agree while the context fits in block_size (they must: same weights, same seed).
loss: the model of a checkpoint of v12 or v13 reads the first --tokens + 1 tokens of its val text, each next token
predicted from the ones before (teacher forcing), twice: from the window of the last block_size tokens computed
again for every token, as v12 samples, and through v13's cache, which slides past block_size. Both in bits per
character of the same text. Run it with OMP_NUM_THREADS=1 for the figures of one thread."""

import argparse
import hashlib
import importlib.util
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent


def load(name):
    """ROOT/name.py as a fresh module, its hyperparameters at their defaults."""
    spec = importlib.util.spec_from_file_location(f"{name}_sampled", ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def speed(tokens):
    v12, v13 = load("v12"), load("v13")
    torch.manual_seed(0)
    models = {"v12 (the window again for every token)": v12.GPTLanguageModel(v12.vocab_size).eval()}
    with torch.no_grad():
        for weight in models["v12 (the window again for every token)"].parameters():
            weight.normal_(0.0, 0.02)  # untrained, but no projection at zero: every layer computes
    models["v13 (KV cache)"] = v13.GPTLanguageModel(v13.vocab_size).eval()
    models["v13 (KV cache)"].load_state_dict(models["v12 (the window again for every token)"].state_dict())
    print(f"{sum(p.numel() for p in models['v13 (KV cache)'].parameters()):,} parameters, {tokens} tokens each,"
          f" {torch.get_num_threads()} thread(s)", flush=True)
    samples, times = [], []
    for name, model in models.items():
        torch.manual_seed(1)
        start = time.perf_counter()
        start_token = torch.zeros((1, 1), dtype=torch.long)
        drawn = model.generate(start_token, tokens)  # v12: the whole sample; v13 yields each new token
        samples.append((drawn if isinstance(drawn, torch.Tensor) else torch.cat([start_token, *drawn], dim=1))[0])
        times.append(time.perf_counter() - start)
        print(f"{name}: {times[-1]:.1f} s, {times[-1] / tokens * 1000:.2f} ms per token", flush=True)
    agree = torch.equal(samples[0][:v13.block_size], samples[1][:v13.block_size])
    print(f"speed-up: {times[0] / times[1]:.1f}x; the first {v13.block_size} tokens"
          f" {'agree' if agree else 'DIFFER'}")


def loss(checkpoint, tokens):
    v13 = load("v13")
    state = v13.read_checkpoint(checkpoint)  # the scripts' own checks: the SHA-256 after its bytes, weights_only
    if state.get("script") not in ("v12.py", "v13.py") or any(not isinstance(state.get(key), kind)
                                                               for key, kind in v13.CONTENTS.items()):
        sys.exit(f"error: {checkpoint} is no checkpoint of v12.py or v13.py")
    v13.parse_args([f"--{name}={value}" for name, value in state["hyperparameters"].items()
                    if name in v13.HYPERPARAMETERS])  # its sizes and its text
    model = v13.GPTLanguageModel(v13.vocab_size).eval()
    model.load_state_dict(state["model"])  # v12's weights have v13's names: the same model
    encode, decode, _ = v13.build_tokenizer(state["merges"])
    text = v13.load_text(v13.data_path)
    trained_on = hashlib.sha256(text.encode("utf-8")).hexdigest() == state["text_sha256"]
    ids = torch.tensor(encode(v13.split_data(text)[1]))  # the val text's tokens
    if len(ids) <= tokens:
        sys.exit(f"error: --tokens={tokens}: the val text of {v13.data_path} holds {len(ids)} tokens; at most"
                 f" {len(ids) - 1} can be predicted")
    ids = ids[:tokens + 1]  # (tokens + 1,)
    targets = ids[1:]  # the token after each position
    characters = len(decode(targets.tolist()))
    with torch.no_grad():
        # the window of the last block_size tokens before each target, computed again each time, as v12 samples
        starts = (torch.arange(tokens) - v13.block_size + 1).clamp(min=0)
        recomputed = torch.stack([model(ids[start:end + 1][None])[0][0, -1] for start, end in
                                  zip(starts.tolist(), range(tokens))])  # (tokens, vocab_size)
        caches = [v13.KVCache() for _ in model.blocks]
        cached = torch.cat([model(ids[i].view(1, 1), caches=caches)[0][0] for i in range(tokens)])  # one by one
    for name, logits in (("the window computed again (v12)", recomputed), ("through the cache (v13)", cached)):
        nats = F.cross_entropy(logits, targets).item()
        print(f"{name}: {nats:.4f} nats per token, {nats * tokens / characters / math.log(2):.4f} bits per character")
    within = min(tokens, v13.block_size - 1)  # while the context fits, both compute the same
    difference = (recomputed[:within] - cached[:within]).abs().max().item()
    print(f"{tokens} tokens ({characters} characters) of {v13.data_path}'s val text"
          f"{'' if trained_on else ', not the text the model was trained on'}, block_size {v13.block_size};"
          f" the logits of the first {within} differ by at most {difference:.1e}")


def main(argv):
    parser = argparse.ArgumentParser(prog="python tools/sampling.py", usage=__doc__.split("\n\n")[1].strip())
    parser.add_argument("what", choices=["speed", "loss"])
    parser.add_argument("checkpoint", nargs="?", type=Path, help="for loss: a checkpoint of v12.py or v13.py")
    parser.add_argument("--tokens", type=int, default=2000, help="tokens to sample, or to predict (default 2000)")
    options = parser.parse_args(argv)
    if not 1 <= options.tokens <= 100_000:
        parser.error(f"--tokens must be from 1 to 100000, got {options.tokens}")
    if options.what == "speed" and options.checkpoint:
        parser.error(f"speed takes no checkpoint, got {options.checkpoint}")
    if options.what == "speed":
        return speed(options.tokens)
    if not options.checkpoint:
        parser.error("loss needs the path of a checkpoint of v12.py or v13.py")
    loss(options.checkpoint, options.tokens)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:  # Ctrl-C: no traceback, the shell's status for it
        sys.exit(130)
