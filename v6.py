"""v5's GPT, fast: the same model, trained at full speed.

New in this file, after v5.py, and nothing but speed: the heads' separate key, query
and value layers become one fused projection feeding F.scaled_dot_product_attention
(a flash-attention kernel on CUDA); CUDA runs in bf16 autocast (fp16 with gradient
scaling where the GPU lacks bf16) and the training step is compiled by torch.compile;
batches are gathered on the device in one indexing operation; AdamW is fused, decays
only the weight matrices and follows a warmup + cosine learning-rate schedule, with
gradient clipping; and the loss is measured exactly over every non-overlapping window
of the validation split, which is cheap enough to do often. The defaults are chosen
for the time to reach a target validation loss.

    python v6.py                                   # on a GPU
    python v6.py --compile=False --max_iters=500 --data_path=other.txt
"""

import contextlib
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn import functional as F

# hyperparameters (each can be overridden on the command line: --name=value)
batch_size = 64  # independent sequences processed in parallel
block_size = 256  # maximum context length for predictions, in characters
max_iters = 2000  # optimizer steps
eval_interval = 100  # steps between loss estimates
learning_rate = 1e-3  # peak AdamW step size, reached after the warmup
min_lr = 1e-4  # the step size the cosine schedule ends at
warmup_iters = 100  # steps of linear warmup from zero to learning_rate
weight_decay = 0.1  # AdamW weight decay, applied to the weight matrices only
beta2 = 0.99  # AdamW's second-moment decay: a shorter memory suits few, small steps
grad_clip = 1.0  # gradients are rescaled to at most this global norm
n_embd = 384  # embedding dimension: the width of every token's vector
n_head = 6  # attention heads, each of size n_embd // n_head
n_layer = 6  # transformer blocks stacked
dropout = 0.2  # fraction of activations zeroed during training, against overfitting
max_new_tokens = 2000  # characters sampled after training
device = "auto"  # 'auto' picks cuda, then mps, then cpu
data_path = str(Path(__file__).with_name("input.txt"))  # training text: any UTF-8 file
seed = 1337  # random seed: the same seed gives the same run
out_path = str(Path(__file__).with_name("output.txt"))  # where the sample is written
compile = True  # torch.compile the training step on CUDA (False or True; never on CPU or mps)
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
    at_least_one = ["batch_size", "block_size", "eval_interval", "warmup_iters", "n_embd", "n_head", "n_layer"]
    if max_iters < 0 or learning_rate <= 0 or any(globals()[name] < 1 for name in at_least_one):
        sys.exit("error: max_iters must be >= 0, learning_rate > 0, and " + ", ".join(at_least_one) + " >= 1")
    if n_embd % n_head:
        sys.exit(f"error: n_embd={n_embd} must be divisible by n_head={n_head}")
    if not 0 <= dropout < 1:
        sys.exit(f"error: dropout={dropout} must be in [0, 1)")
    if min(min_lr, weight_decay, grad_clip) < 0 or not 0 <= beta2 < 1:
        sys.exit("error: min_lr, weight_decay and grad_clip must be >= 0, and beta2 in [0, 1)")
    if not Path(out_path).parent.is_dir():
        sys.exit(f"error: no directory to write {out_path} into")


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
    ix = torch.randint(len(data) - block_size, (batch_size, 1), device=data.device)
    windows = data[ix + torch.arange(block_size + 1, device=data.device)]  # one gather: (B, T + 1)
    return windows[:, :-1], windows[:, 1:]  # (B, T) each


def eval_windows(data, every=1):
    """Every `every`-th non-overlapping block_size window of data, as inputs and targets (N, T)."""
    starts = torch.arange(0, (len(data) - 1) // block_size, every, device=data.device) * block_size
    windows = data[starts[:, None] + torch.arange(block_size + 1, device=data.device)]  # (N, T + 1)
    return windows[:, :-1], windows[:, 1:]


# ---- model ----------------------------------------------------------------

class MultiHeadAttention(nn.Module):
    """Causal self-attention of num_heads heads, computed for all heads at once."""

    def __init__(self, num_heads, head_size):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(n_embd, 3 * num_heads * head_size, bias=False)  # all heads' q, k, v
        self.proj = nn.Linear(head_size * num_heads, n_embd)  # back into the residual path
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # (B, T, C) -> 3 x (B, T, num_heads * head_size)
        q, k, v = (t.view(B, T, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        # softmax(q k^T / sqrt(hs)) v with the causal mask, in one fused kernel
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout if self.training else 0.0,
                                             is_causal=True)  # (B, nh, T, hs)
        out = out.transpose(1, 2).reshape(B, T, -1)  # heads side by side: (B, T, num_heads * head_size)
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

def autocast(device):
    """bf16 autocast on CUDA (fp16 where the GPU has no bf16); float32 elsewhere."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


@torch.no_grad()
def estimate_loss(model, splits):
    """Mean loss over the given windows of each split, with the model in eval mode."""
    model.eval()
    out = {}
    for split, (x, y) in splits.items():
        total = torch.zeros((), device=x.device)  # stays on the device: no sync per batch
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            with autocast(x.device):
                _, loss = model(xb, yb)
            total += loss.float() * len(xb)  # weighted by size: the last batch may be smaller
        out[split] = (total / len(x)).item()
    model.train()
    return out


def configure_optimizer(model):
    """AdamW that decays the weight matrices only, not biases or LayerNorm gains; fused on CUDA."""
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate, betas=(0.9, beta2), fused=params[0].is_cuda)


def lr_at(step):
    """Linear warmup to learning_rate over warmup_iters, then cosine decay to min_lr at max_iters."""
    if step < warmup_iters:
        return learning_rate * (step + 1) / warmup_iters
    progress = min(1.0, (step - warmup_iters) / max(1, max_iters - warmup_iters))
    return min_lr + 0.5 * (learning_rate - min_lr) * (1 + math.cos(math.pi * progress))


def train_step(model, optimizer, scaler, xb, yb):
    """One optimizer update on one batch; returns that batch's loss before the update."""
    with autocast(xb.device):
        _, loss = model(xb, yb)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()  # fp16 only: the loss is scaled up so small gradients survive
    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss


def train(model, train_data, val_data):
    """max_iters AdamW steps on random batches, reporting losses every eval_interval steps."""
    optimizer = configure_optimizer(model)
    on_cuda = train_data.device.type == "cuda"
    scaler = torch.amp.GradScaler(enabled=on_cuda and not torch.cuda.is_bf16_supported())
    # only the training step is compiled: evaluation and sampling run eagerly, with other shapes
    step_model = torch.compile(model) if compile and on_cuda else model
    val_windows = eval_windows(val_data)
    # about as many training windows as validation windows, spread evenly over the training split
    train_windows = eval_windows(train_data, every=max(1, len(train_data) // len(val_data)))
    start = time.time()

    def report(step):
        losses = estimate_loss(model, {"train": train_windows, "val": val_windows})
        line = f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
        if step > 0:  # time per step so far, evaluations included, and what that leaves
            per_step = (time.time() - start) / step
            line += f" | {per_step * 1000:.1f} ms/step, {per_step * (max_iters - step):.0f} s left"
        print(line, flush=True)

    for step in range(max_iters):
        if step % eval_interval == 0:
            report(step)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        train_step(step_model, optimizer, scaler, *get_batch(train_data))
    report(max_iters)


def main(argv):
    apply_overrides(argv)
    torch.manual_seed(seed)
    target = pick_device(device)
    if target.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 tensor cores for float32 matmuls
    elif target.type == "cpu" and device == "auto":
        print("note: no GPU found; the defaults take hours on a CPU. A CPU-sized run:\n"
              "  python v6.py --batch_size=32 --block_size=64 --n_embd=128 --n_head=4"
              " --n_layer=4 --max_iters=2000 --eval_interval=500")
    text = load_text(data_path)
    encode, decode, vocab_size = build_tokenizer(text)
    train_data, val_data = split_data(torch.tensor(encode(text), dtype=torch.long))
    train_data, val_data = train_data.to(target), val_data.to(target)  # moved to the device once

    model = GPTLanguageModel(vocab_size).to(target)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters, training on {target}")
    train(model, train_data, val_data)
    if target.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB")

    model.eval()  # sample with training-only behaviour switched off
    context = torch.zeros((1, 1), dtype=torch.long, device=target)  # start from token 0
    with autocast(target):
        sample = decode(model.generate(context, max_new_tokens)[0].tolist())
    print(sample)
    Path(out_path).write_text(sample, encoding="utf-8")
    print(f"sample written to {out_path}")


if __name__ == "__main__":
    main(sys.argv[1:])
