"""The full GPT: LayerNorm and dropout, scaled up, trained on a GPU.

New in this file, after v4.py: every Block normalises its input before attention
and before the feed-forward network (pre-norm LayerNorm), and a final LayerNorm
precedes lm_head, which keeps a deeper stack trainable; dropout on the attention
weights and on the outputs of the projections and the feed-forward network fights
overfitting; weights start small, from N(0, 0.02). The model is scaled up to 6
layers of 6 heads, 384 wide, reading 256 characters of context: sized for a GPU.
The sample is kept in output.txt.

    python v5.py                                   # on a GPU
    python v5.py --batch_size=32 --block_size=64 --n_embd=128 --n_head=4 --n_layer=4 --max_iters=2000 --eval_iters=50

Its defaults reached val loss 1.5967 on input.txt and 1.4880 on the classic corpus
on an H100 (training_logs.md; those runs also had TF32 matmuls, which are v6's now).
"""

import math
import operator
import os
import re
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn import functional as F

# hyperparameters (each can be overridden on the command line: --name=value)
batch_size = 64  # independent sequences processed in parallel
block_size = 256  # maximum context length for predictions, in characters
max_iters = 2250  # optimizer steps (lecture: 5000; see README)
eval_interval = 500  # steps between loss estimates
learning_rate = 6e-4  # AdamW step size (lecture: 3e-4; see README)
eval_iters = 200  # batches averaged per loss estimate
n_embd = 384  # embedding dimension: the width of every token's vector
n_head = 6  # attention heads, each of size n_embd // n_head
n_layer = 6  # transformer blocks stacked
dropout = 0.2  # fraction of activations zeroed during training, against overfitting
max_new_tokens = 2000  # characters sampled after training
device = "auto"  # 'auto' picks cuda, then mps, then cpu
data_path = str(Path(__file__).with_name("input.txt"))  # training text: any UTF-8 file
seed = 1337  # random seed: the same seed gives the same run
out_path = str(Path(__file__).with_name("output.txt"))  # file the sample is also written to ('' = printed only)
# the names above: the ones --name=value may set
HYPERPARAMETERS = [name for name, value in globals().items()
                   if not name.startswith("_") and isinstance(value, (bool, int, float, str))]


# ---- data -----------------------------------------------------------------

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
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        B, T, C = x.shape
        k = self.key(x)  # what each position offers: (B, T, C) -> (B, T, head_size)
        q = self.query(x)  # what each position looks for: (B, T, C) -> (B, T, head_size)
        # affinities, scaled by 1/sqrt(head_size) so that softmax starts out diffuse
        wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5  # (B, T, hs) @ (B, hs, T) -> (B, T, T)
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))  # no looking ahead
        wei = F.softmax(wei, dim=-1)  # each row: weights over the past that sum to 1
        wei = self.dropout(wei)  # randomly stop some positions from communicating
        v = self.value(x)  # what each position passes on: (B, T, C) -> (B, T, head_size)
        return wei @ v  # (B, T, T) @ (B, T, hs) -> (B, T, hs)


class MultiHeadAttention(nn.Module):
    """Several heads of self-attention in parallel, their outputs concatenated."""

    def __init__(self, num_heads, head_size):
        super().__init__()
        self.heads = nn.ModuleList([Head(head_size) for _ in range(num_heads)])
        self.proj = nn.Linear(head_size * num_heads, n_embd)  # back into the residual path
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        out = torch.cat([h(x) for h in self.heads], dim=-1)  # (B, T, num_heads * head_size)
        return self.dropout(self.proj(out))  # (B, T, n_embd)


class FeedForward(nn.Module):
    """A position-wise MLP: each position computes on what attention gathered for it."""

    def __init__(self, n_embd):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),  # (B, T, n_embd) -> (B, T, 4 * n_embd)
            nn.ReLU(),
            nn.Linear(4 * n_embd, n_embd),  # (B, T, 4 * n_embd) -> (B, T, n_embd)
            nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.net(x)


class Block(nn.Module):
    """Transformer block: communication (attention) followed by computation (feed-forward)."""

    def __init__(self, n_embd, n_head):
        super().__init__()
        self.attention = MultiHeadAttention(n_head, n_embd // n_head)
        self.feed_forward = FeedForward(n_embd)
        self.ln1 = nn.LayerNorm(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)

    def forward(self, x):
        x = x + self.attention(self.ln1(x))  # residual connections: each sub-layer adds to x,
        x = x + self.feed_forward(self.ln2(x))  # reading a normalised copy of it (pre-norm)
        return x


class GPTLanguageModel(nn.Module):
    """Token and position embeddings, self-attention, then a linear map to next-character logits."""

    def __init__(self, vocab_size):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.position_embedding_table = nn.Embedding(block_size, n_embd)
        self.blocks = nn.Sequential(*[Block(n_embd, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)  # final layer norm
        self.lm_head = nn.Linear(n_embd, vocab_size)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        """Small N(0, 0.02) weights and zero biases: PyTorch's N(0, 1) embeddings would swamp
        the residual stream, and the deeper model learns markedly slower from them."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        tok_emb = self.token_embedding_table(idx)  # (B, T) -> (B, T, n_embd)
        pos_emb = self.position_embedding_table(torch.arange(T, device=idx.device))  # (T, n_embd)
        x = tok_emb + pos_emb  # broadcast over the batch: (B, T, n_embd)
        x = self.blocks(x)  # (B, T, n_embd)
        x = self.ln_f(x)  # (B, T, n_embd)
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
    timer = StepTimer()  # time per step and time left, for the lines below

    def report(step):
        losses = estimate_loss(model, {"train": train_data, "val": val_data})
        print(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
              + timer.lap(step), flush=True)
        stop_if_diverged(step, losses)

    for step in range(max_iters):
        if step % eval_interval == 0:
            report(step)
        train_step(model, optimizer, *get_batch(train_data))
        timer.tick(step + 1)
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
    refuse_hours_on_cpu(model, target)
    train(model, train_data, val_data)
    if target.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(target) / 2**20:,.0f} MiB")

    model.eval()  # sample with training-only behaviour switched off
    context = torch.zeros((1, 1), dtype=torch.long, device=target)  # start from token 0
    sample = decode(model.generate(context, max_new_tokens)[0].tolist())
    if out_path:
        Path(out_path).write_text(sample, encoding="utf-8")
        print(f"sample, also written to {out_path}:")
    print(sample)


# What each number may be: "OP VALUE", joined by " and "; VALUE is a number or another name.
RULES = {
    "batch_size": ">= 1",
    "block_size": ">= 1",
    "max_iters": ">= 0",
    "eval_interval": ">= 1",
    "learning_rate": "> 0",
    "eval_iters": ">= 1",
    "n_embd": ">= 1 and multiple of n_head",
    "n_head": ">= 1",
    "n_layer": ">= 1",
    "dropout": ">= 0 and < 1",
    "max_new_tokens": ">= 0",
    "seed": ">= 0 and < 18446744073709551616",
}
# a CPU-sized run to suggest when device=auto finds no GPU and these sizes would take hours
CPU_ARGS = "--batch_size=32 --block_size=64 --n_embd=128 --n_head=4 --n_layer=4 --max_iters=2000 --eval_iters=50"


# ---- command line and input checks (the same in every file) ----------------

OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
             "multiple of": lambda value, base: value % base == 0}
KINDS = {int: "an integer", float: "a finite number", bool: "True or False", str: "a string"}


def apply_overrides(argv):
    """Set hyperparameters from --name=value arguments, cast to the type of their default, and check
    them all; return the names that were given."""
    if "--help" in argv or "-h" in argv:
        print_help()
        sys.exit(0)
    given = set()
    for arg in argv:
        name, has_value, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or name not in HYPERPARAMETERS:
            sys.exit(f"error: unknown argument {arg!r}; python {Path(__file__).name} --help lists the names")
        if not has_value:
            sys.exit(f"error: {arg} has no value: the form is --{name}=value")
        kind = type(globals()[name])
        try:
            globals()[name] = {"True": True, "False": False}[value] if kind is bool else kind(value)
        except (KeyError, ValueError):
            sys.exit(f"error: --{name} must be {KINDS[kind]}, got {value!r}")
        given.add(name)
    for name, rule in RULES.items():
        check_rule(name, rule)
    check_output_paths()
    return given


def check_rule(name, rule):
    """Exit with a one-line error unless the hyperparameter is finite and meets every part of its rule."""
    value = globals()[name]
    for part in rule.split(" and "):
        op, bound = part.rsplit(" ", 1)
        limit = globals()[bound] if bound in HYPERPARAMETERS else int(bound) if bound.isdigit() else float(bound)
        if (isinstance(value, float) and not math.isfinite(value)) or not OPERATORS[op](value, limit):
            shown = f"{bound} ({limit})" if bound in HYPERPARAMETERS else bound
            sys.exit(f"error: --{name} must be {KINDS[type(value)]} "
                     + rule.replace(bound, shown) + f", got {value}")


def check_output_paths():
    """Every *_path but data_path is written: it must be a file in an existing, writable directory,
    and neither the training text nor another output."""
    outputs = [name for name in HYPERPARAMETERS if name.endswith("_path") and name != "data_path"]
    seen = {os.path.realpath(data_path): "data_path"}
    for name in outputs:
        path = globals()[name]
        if not path:
            continue
        real = os.path.realpath(path)
        if real in seen:
            sys.exit(f"error: --{name}={path} is also --{seen[real]}; writing it would destroy that file")
        seen[real] = name
        if os.path.isdir(path):
            sys.exit(f"error: --{name}={path} is a directory; give a file name")
        directory = os.path.dirname(real)
        if not os.path.isdir(directory):
            sys.exit(f"error: --{name}={path}: no directory {directory} to write into")
        if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            sys.exit(f"error: --{name}={path} cannot be written here")


def print_help():
    """Every hyperparameter with its default and its comment, read from the top of this file."""
    comments = dict(re.findall(r"^(\w+) = .*?  # (.*)$", Path(__file__).read_text(encoding="utf-8"), re.M))
    print(f"usage: python {Path(__file__).name} [--name=value ...]\n\n{__doc__.splitlines()[0]}\n")
    for name in HYPERPARAMETERS:
        rule = f" [{RULES[name]}]" if name in RULES else ""
        print(f"  --{name}={globals()[name]}\n      {comments.get(name, '')}{rule}")


def pick_device(name):
    """'auto' picks cuda, then mps, then cpu; any other name must be a device present here."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        target = torch.device(name)
    except RuntimeError:
        sys.exit(f"error: --device={name} is not a device name; use auto, cpu, cuda, cuda:N or mps")
    count = {"cpu": 1, "cuda": torch.cuda.device_count(), "mps": int(torch.backends.mps.is_available())}
    if (target.index or 0) >= count.get(target.type, 0):
        sys.exit(f"error: --device={name} is not available here; use auto, cpu, cuda, cuda:N or mps")
    return target


def refuse_hours_on_cpu(model, target):
    """With device=auto and no GPU, stop before a run that would take over an hour on this CPU.

    The estimate times one forward pass of one sequence, without drawing random numbers,
    and counts a training step as three such passes (forward and backward) per sequence."""
    if device != "auto" or target.type != "cpu":
        return
    was_training = model.training
    model.eval()
    with torch.no_grad():
        window = torch.zeros((1, block_size), dtype=torch.long)
        model(window)  # the first pass allocates; time the second
        start = time.perf_counter()
        model(window)
        seconds = 3 * batch_size * (time.perf_counter() - start) * max_iters
    model.train(was_training)
    if seconds > 3600:
        suggestion = f"python {Path(__file__).name} {CPU_ARGS}" if CPU_ARGS else "smaller sizes"
        sys.exit(f"error: no GPU found, and these sizes need at least {duration(seconds)} of training on"
                 f" this CPU (estimated from one forward pass); try {suggestion}, or pass --device=cpu to run anyway")


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


def duration(seconds):
    """A time span as a person reads it: '42 s', '12 min' or '3.5 h'."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


class StepTimer:
    """Time per training step, evaluations included, and the time left to max_iters."""

    def __init__(self, first_step=0):
        self.first_step = first_step
        self.start = self.last_line = time.time()

    def lap(self, step):
        """' | 12.3 ms/step, 4 min left' for a line printed after step steps ('' before any)."""
        self.last_line = time.time()
        if step == self.first_step:
            return ""
        per_step = (self.last_line - self.start) / (step - self.first_step)
        return f" | {per_step * 1000:.1f} ms/step, {duration(per_step * (max_iters - step))} left"

    def tick(self, step):
        """After each training step: a progress line whenever 10 s have passed without one."""
        if time.time() - self.last_line >= 10:
            print(f"... step {step}/{max_iters}" + self.lap(step), flush=True)


def stop_if_diverged(step, losses):
    """A loss that is NaN or infinite will not come back: end the run with a one-line error."""
    if not all(math.isfinite(loss) for loss in losses.values()):
        shown = ", ".join(f"{split} {loss}" for split, loss in losses.items())
        sys.exit(f"error: training diverged: the loss is not finite at step {step} ({shown});"
                 " try a smaller --learning_rate")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:  # Ctrl-C: stop without a traceback
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # the output went to a program that stopped reading it (head, say)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        sys.exit(1)
    except torch.OutOfMemoryError:
        sys.exit("error: out of GPU memory at these sizes; try a smaller --batch_size or --block_size")
