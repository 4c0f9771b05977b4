"""A character-level bigram language model: the next character from the current one alone.

The first file of the series. Everything but the model stays in every later file:
the character tokenizer, the train/val split, batching, loss estimates, the
training loop and sampling.

    python bigram.py
    python bigram.py --max_iters=500 --data_path=other.txt
"""

import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn import functional as F

# hyperparameters (each can be overridden on the command line: --name=value)
batch_size = 32  # independent sequences processed in parallel
block_size = 8  # maximum context length for predictions, in characters
max_iters = 3000  # optimizer steps
eval_interval = 300  # steps between loss estimates
learning_rate = 1e-2  # AdamW step size
eval_iters = 200  # batches averaged per loss estimate
max_new_tokens = 2000  # characters sampled after training
device = "auto"  # 'auto' picks cuda, then mps, then cpu
data_path = str(Path(__file__).with_name("input.txt"))  # training text: any UTF-8 file
seed = 1337  # random seed: the same seed gives the same run
# the names above: the ones --name=value may set
HYPERPARAMETERS = [name for name, value in globals().items()
                   if not name.startswith("_") and isinstance(value, (bool, int, float, str))]


def apply_overrides(argv):
    """Set hyperparameters from --name=value arguments, cast to the type of their default."""
    for arg in argv:
        name, has_value, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or not has_value or name not in HYPERPARAMETERS:
            sys.exit(f"error: unknown argument {arg!r}; valid: --name=value with name one of "
                     + ", ".join(HYPERPARAMETERS))
        kind = type(globals()[name])
        try:
            globals()[name] = {"True": True, "False": False}[value] if kind is bool else kind(value)
        except (KeyError, ValueError):
            sys.exit(f"error: --{name} expects a value of type {kind.__name__}, got {value!r};"
                     " valid names: " + ", ".join(HYPERPARAMETERS))
    at_least_one = ["batch_size", "block_size", "eval_interval", "eval_iters"]
    if max_iters < 0 or learning_rate <= 0 or any(globals()[name] < 1 for name in at_least_one):
        sys.exit("error: max_iters must be >= 0, learning_rate > 0, and " + ", ".join(at_least_one) + " >= 1")


def pick_device(name):
    """'auto' picks cuda, then mps, then cpu; any other name must be available here."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(name.split(":")[0], False):
        sys.exit(f"error: device {name!r} is not available here; use auto, cpu, cuda or mps")
    try:
        return torch.device(name)
    except RuntimeError:
        sys.exit(f"error: {name!r} is not a device name; use auto, cpu, cuda or mps")


# ---- data -----------------------------------------------------------------

def load_text(path):
    """Read the training text; anything unusable ends the run with a one-line error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        sys.exit(f"error: no data file at {path}")
    except UnicodeDecodeError:
        sys.exit(f"error: {path} is not UTF-8 text")
    except OSError as error:
        sys.exit(f"error: cannot read {path}: {error.strerror}")
    if not text:
        sys.exit(f"error: {path} is empty")
    return text


def build_tokenizer(text):
    """Character-level tokenizer: each distinct character of the text is one token."""
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    itos = dict(enumerate(chars))

    def encode(s):
        return [stoi[c] for c in s]  # string -> list of integers

    def decode(ids):
        return "".join(itos[i] for i in ids)  # list of integers -> string

    return encode, decode, len(chars)


def split_data(data):
    """First 90% for training, the rest for validation; each must hold a full window."""
    n = int(0.9 * len(data))
    train_data, val_data = data[:n], data[n:]
    if min(len(train_data), len(val_data)) <= block_size:
        sys.exit(f"error: the text is too short for block_size={block_size}: both splits need"
                 f" more than {block_size} characters (train has {len(train_data)},"
                 f" val has {len(val_data)})")
    return train_data, val_data


def get_batch(data):
    """Random windows of data: inputs x and targets y, y being x shifted by one character."""
    ix = torch.randint(len(data) - block_size, (batch_size,))
    x = torch.stack([data[i:i + block_size] for i in ix])  # (B, T)
    y = torch.stack([data[i + 1:i + block_size + 1] for i in ix])  # (B, T)
    return x, y


# ---- model ----------------------------------------------------------------

class BigramLanguageModel(nn.Module):
    """Each token reads the logits for the next token off a row of a lookup table."""

    def __init__(self, vocab_size):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx, targets=None):
        logits = self.token_embedding_table(idx)  # (B, T) -> (B, T, vocab_size)
        if targets is None:
            loss = None
        else:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())  # (B*T, vocab_size) vs (B*T,)
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens):
        """Extend idx (B, T) by max_new_tokens characters, each sampled from the model."""
        for _ in range(max_new_tokens):
            logits, _ = self(idx)  # (B, T, vocab_size)
            probs = F.softmax(logits[:, -1, :], dim=-1)  # the last position only: (B, vocab_size)
            idx_next = torch.multinomial(probs, num_samples=1)  # (B, 1)
            idx = torch.cat((idx, idx_next), dim=1)  # (B, T + 1)
        return idx


# ---- training -------------------------------------------------------------

@torch.no_grad()
def estimate_loss(model, splits):
    """Mean loss over eval_iters random batches of each split, with the model in eval mode."""
    model.eval()
    out = {}
    for split, data in splits.items():
        losses = torch.zeros(eval_iters, device=data.device)  # stays on the device: no sync per batch
        for k in range(eval_iters):
            _, loss = model(*get_batch(data))
            losses[k] = loss
        out[split] = losses.mean().item()
    model.train()
    return out


def train_step(model, optimizer, xb, yb):
    """One optimizer update on one batch; returns that batch's loss before the update."""
    _, loss = model(xb, yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def train(model, train_data, val_data):
    """max_iters AdamW steps on random batches, reporting losses every eval_interval steps."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    start = time.time()

    def report(step):
        losses = estimate_loss(model, {"train": train_data, "val": val_data})
        line = f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
        if step > 0:  # time per step so far, evaluations included, and what that leaves
            per_step = (time.time() - start) / step
            line += f" | {per_step * 1000:.1f} ms/step, {per_step * (max_iters - step):.0f} s left"
        print(line, flush=True)

    for step in range(max_iters):
        if step % eval_interval == 0:
            report(step)
        train_step(model, optimizer, *get_batch(train_data))
    report(max_iters)


def main(argv):
    apply_overrides(argv)
    torch.manual_seed(seed)
    target = pick_device(device)
    text = load_text(data_path)
    encode, decode, vocab_size = build_tokenizer(text)
    train_data, val_data = split_data(torch.tensor(encode(text), dtype=torch.long))
    train_data, val_data = train_data.to(target), val_data.to(target)  # moved to the device once

    model = BigramLanguageModel(vocab_size).to(target)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters, training on {target}")
    train(model, train_data, val_data)

    model.eval()  # sample with training-only behaviour switched off
    context = torch.zeros((1, 1), dtype=torch.long, device=target)  # start from token 0
    print(decode(model.generate(context, max_new_tokens)[0].tolist()))


if __name__ == "__main__":
    main(sys.argv[1:])
