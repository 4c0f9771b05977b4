"""Transformer blocks: attention then a feed-forward network, stacked with residual connections.

New in this file, after v3.py: a feed-forward network (Linear to 4 * n_embd, ReLU,
Linear back) lets each position compute on what attention gathered; a Block is
attention followed by feed-forward, and n_layer Blocks are stacked. Each sub-layer
adds its output to its input (a residual connection), so gradients flow straight
through the stack; attention gets an output projection back into that residual path.

    python v4.py
    python v4.py --max_iters=500 --data_path=other.txt
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
max_iters = 5000  # optimizer steps
eval_interval = 500  # steps between loss estimates
learning_rate = 1e-3  # AdamW step size (attention wants a smaller one than the bigram table)
eval_iters = 200  # batches averaged per loss estimate
n_embd = 32  # embedding dimension: the width of every token's vector
n_head = 4  # attention heads, each of size n_embd // n_head
n_layer = 3  # transformer blocks stacked
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
    at_least_one = ["batch_size", "block_size", "eval_interval", "eval_iters", "n_embd", "n_head", "n_layer"]
    if max_iters < 0 or learning_rate <= 0 or any(globals()[name] < 1 for name in at_least_one):
        sys.exit("error: max_iters must be >= 0, learning_rate > 0, and " + ", ".join(at_least_one) + " >= 1")
    if n_embd % n_head:
        sys.exit(f"error: n_embd={n_embd} must be divisible by n_head={n_head}")


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

class Head(nn.Module):
    """One head of causal self-attention."""

    def __init__(self, head_size):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        # lower-triangular ones: position t may look at positions 0..t only
        self.register_buffer("tril", torch.tril(torch.ones(block_size, block_size)))

    def forward(self, x):
        B, T, C = x.shape
        k = self.key(x)  # what each position offers: (B, T, C) -> (B, T, head_size)
        q = self.query(x)  # what each position looks for: (B, T, C) -> (B, T, head_size)
        # affinities, scaled by 1/sqrt(head_size) so that softmax starts out diffuse
        wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5  # (B, T, hs) @ (B, hs, T) -> (B, T, T)
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))  # no looking ahead
        wei = F.softmax(wei, dim=-1)  # each row: weights over the past that sum to 1
        v = self.value(x)  # what each position passes on: (B, T, C) -> (B, T, head_size)
        return wei @ v  # (B, T, T) @ (B, T, hs) -> (B, T, hs)


class MultiHeadAttention(nn.Module):
    """Several heads of self-attention in parallel, their outputs concatenated."""

    def __init__(self, num_heads, head_size):
        super().__init__()
        self.heads = nn.ModuleList([Head(head_size) for _ in range(num_heads)])
        self.proj = nn.Linear(head_size * num_heads, n_embd)  # back into the residual path

    def forward(self, x):
        out = torch.cat([h(x) for h in self.heads], dim=-1)  # (B, T, num_heads * head_size)
        return self.proj(out)  # (B, T, n_embd)


class FeedForward(nn.Module):
    """A position-wise MLP: each position computes on what attention gathered for it."""

    def __init__(self, n_embd):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),  # (B, T, n_embd) -> (B, T, 4 * n_embd)
            nn.ReLU(),
            nn.Linear(4 * n_embd, n_embd),  # (B, T, 4 * n_embd) -> (B, T, n_embd)
        )

    def forward(self, x):
        return self.net(x)


class Block(nn.Module):
    """Transformer block: communication (attention) followed by computation (feed-forward)."""

    def __init__(self, n_embd, n_head):
        super().__init__()
        self.attention = MultiHeadAttention(n_head, n_embd // n_head)
        self.feed_forward = FeedForward(n_embd)

    def forward(self, x):
        x = x + self.attention(x)  # residual connections: each sub-layer adds to x
        x = x + self.feed_forward(x)
        return x


class GPTLanguageModel(nn.Module):
    """Token and position embeddings, self-attention, then a linear map to next-character logits."""

    def __init__(self, vocab_size):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.position_embedding_table = nn.Embedding(block_size, n_embd)
        self.blocks = nn.Sequential(*[Block(n_embd, n_head) for _ in range(n_layer)])
        self.lm_head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        tok_emb = self.token_embedding_table(idx)  # (B, T) -> (B, T, n_embd)
        pos_emb = self.position_embedding_table(torch.arange(T, device=idx.device))  # (T, n_embd)
        x = tok_emb + pos_emb  # broadcast over the batch: (B, T, n_embd)
        x = self.blocks(x)  # (B, T, n_embd)
        logits = self.lm_head(x)  # (B, T, n_embd) -> (B, T, vocab_size)
        if targets is None:
            loss = None
        else:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())  # (B*T, vocab_size) vs (B*T,)
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens):
        """Extend idx (B, T) by max_new_tokens characters, each sampled from the model."""
        for _ in range(max_new_tokens):
            idx_cond = idx[:, -block_size:]  # the position table has block_size rows: crop the context
            logits, _ = self(idx_cond)  # (B, T, vocab_size)
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

    model = GPTLanguageModel(vocab_size).to(target)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters, training on {target}")
    train(model, train_data, val_data)

    model.eval()  # sample with training-only behaviour switched off
    context = torch.zeros((1, 1), dtype=torch.long, device=target)  # start from token 0
    print(decode(model.generate(context, max_new_tokens)[0].tolist()))


if __name__ == "__main__":
    main(sys.argv[1:])
