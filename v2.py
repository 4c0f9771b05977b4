"""One head of causal self-attention: each character looks back at the ones before it.

New in this file, after bigram.py: tokens are embedded in n_embd dimensions, a
learned position embedding says where each one stands, and a single self-attention
head lets every position gather information from the positions before it. A linear
layer (lm_head) turns the result into next-character logits.

    python v2.py
"""

import argparse
import math
import os
import re
import sys
import tokenize
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn import functional as F

# hyperparameters (each can be set on the command line: --name=value)
batch_size = 32  # independent sequences processed in parallel
block_size = 8  # maximum context length for predictions, in characters
max_iters = 5000  # optimizer steps
eval_interval = 500  # steps between loss estimates
learning_rate = 1e-3  # AdamW step size (attention wants a smaller one than the bigram table)
eval_iters = 200  # batches averaged per loss estimate
n_embd = 32  # embedding dimension: the width of every token's vector
max_new_tokens = 2000  # characters sampled after training
device = "auto"  # 'auto' picks cuda, then mps, then cpu
data_path = str(Path(__file__).with_name("input.txt"))  # training text: any UTF-8 file
seed = 1337  # random seed: the same seed gives the same run
out_path = ""  # file the sample is also written to ('' = printed only)
HYPERPARAMETERS = [name for name, value in globals().items()  # the names above: --name=value sets them
                   if not name.startswith("_") and isinstance(value, (bool, int, float, str))]
# the smallest value of each number, checked by parse_args; an int makes it whole (a size, a count)
LOWEST = dict(batch_size=1, block_size=1, max_iters=0, eval_interval=1, max_new_tokens=0, seed=0,
              eval_iters=1, n_embd=1)


def check_hyperparameters():
    """A value no run can use stops the run here, with one line."""
    if learning_rate <= 0:
        sys.exit(f"error: --learning_rate must be above 0, got {learning_rate}")


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
    if min(n, len(data) - n) <= block_size:
        sys.exit(f"error: the text is too short: both splits need over block_size={block_size} characters")
    return data[:n], data[n:]


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


class GPTLanguageModel(nn.Module):
    """Token and position embeddings, self-attention, then a linear map to next-token logits."""

    def __init__(self, vocab_size):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.position_embedding_table = nn.Embedding(block_size, n_embd)
        self.attention = Head(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        tok_emb = self.token_embedding_table(idx)  # (B, T) -> (B, T, n_embd)
        pos_emb = self.position_embedding_table(torch.arange(T, device=idx.device))  # (T, n_embd)
        x = tok_emb + pos_emb  # broadcast over the batch: (B, T, n_embd)
        x = self.attention(x)  # (B, T, n_embd)
        logits = self.lm_head(x)  # (B, T, n_embd) -> (B, T, vocab_size)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())  # (B*T, vocab_size) vs (B*T,)
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens):
        """Extend idx (B, T) by max_new_tokens tokens, each sampled from the model."""
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
    out = {split: torch.stack([model(*get_batch(data))[1] for _ in range(eval_iters)]).mean().item()
           for split, data in splits.items()}  # one .item() per split: no wait for the device per batch
    model.train()
    return out


def train(model, train_data, val_data):
    """max_iters AdamW steps on random batches, with the losses every eval_interval steps and at the end."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    for step in range(max_iters + 1):
        if step % eval_interval == 0 or step == max_iters:
            losses = estimate_loss(model, {"train": train_data, "val": val_data})
            if not math.isfinite(losses["train"] + losses["val"]):  # NaN or inf: training will not recover
                sys.exit(f"error: the loss is not finite at step {step}; try a smaller --learning_rate")
            print(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}", flush=True)
        if step < max_iters:
            _, loss = model(*get_batch(train_data))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def main(argv):
    parse_args(argv)  # --name=value for the hyperparameters above
    check_hyperparameters()
    torch.manual_seed(seed)
    torch_device = pick_device(device)
    text = load_text(data_path)
    encode, decode, vocab_size = build_tokenizer(text)
    train_data, val_data = split_data(torch.tensor(encode(text), dtype=torch.long, device=torch_device))

    model = GPTLanguageModel(vocab_size).to(torch_device)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters, training on {torch_device}")
    train(model, train_data, val_data)

    model.eval()  # sample with training-only behaviour switched off
    context = torch.zeros((1, 1), dtype=torch.long, device=torch_device)  # start from token 0
    sample = decode(model.generate(context, max_new_tokens)[0].tolist())
    print(sample)
    if out_path:
        write_atomically(out_path, sample.encode("utf-8"))


# ---- the same in every script: command line, device, text, files ------------

def parse_args(argv):
    """Set the hyperparameters above from --name=value or --name value, each checked alone; return the names given."""
    with tokenize.open(__file__) as source:  # Python's own reading of this file: a '#' in a string is no comment
        comments = {token.line.split("=")[0].rstrip(): token.string.lstrip("# ")  # name = value  # comment
                    for token in tokenize.generate_tokens(source.readline) if token.type == tokenize.COMMENT}
    parser = argparse.ArgumentParser(prog=f"python {Path(__file__).name}", usage="%(prog)s [--name=value ...]",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False, argument_default=argparse.SUPPRESS)
    kinds = {name: type(globals()[name]) for name in HYPERPARAMETERS}  # each typed by its default
    for name, kind in kinds.items():  # a number takes any number
        parser.add_argument(f"--{name}", type={bool: str.lower, str: str}.get(kind, float), metavar=kind.__name__,
                            choices=["true", "false", "1", "0"] if kind is bool else None,
                            help=f"{comments.get(name, '')} (default: {globals()[name]})".replace("%", "%%"))
    given = vars(parser.parse_args(argv))
    for name, kind in kinds.items():  # the given values and the file's own, checked alike
        value, low = given.get(name, globals()[name]), LOWEST.get(name, -math.inf)  # whole: LOWEST's ints (sizes,
        whole = type(low) is int or name not in LOWEST and kind is int and value % 1 == 0  # counts), or a new int
        if kind in (int, float) and not low <= value < (2**31 if whole else math.inf) or whole and value % 1:
            where = f"--{name}={value:.15g}" if name in given else f"{name} = {value!r} in {Path(__file__).name}"
            sys.exit(f"error: {where}: {name} must be a {'whole number below 2**31' if whole else 'finite number'}"
                     + (f", at least {low}" if low > -math.inf else ""))  # NaN and -inf fail at low <= value too
        globals()[name] = (value in ("true", "1", True) if kind is bool else value if kind is str else
                           int(value) if whole else float(value))
    outputs = {name: os.path.realpath(globals()[name]) for name in HYPERPARAMETERS  # each the file it is, through
               if name.endswith("_path") and name != "data_path" and globals()[name]}  # any link, in any spelling
    for name, real in outputs.items():
        path, folder = globals()[name], os.path.dirname(real)
        why = ("exists, and a run writes only new files" if os.path.lexists(path) and name != "ckpt_path" else
               "is the same file as another output" if list(outputs.values()).count(real) > 1 else
               "is in no folder that exists" if not os.path.isdir(folder) else
               "is in a read-only folder" if not os.access(folder, os.W_OK) else "")
        if why:  # the text exists, so it is never written
            sys.exit(f"error: --{name}={path} {why}")
    return list(given)


def pick_device(name):
    """'auto' picks cuda:0, then mps, then cpu; any other must be here, a GPU one this PyTorch has kernels for."""
    present = [f"cuda:{i}" for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)]
    present += ["mps"] * torch.backends.mps.is_available() + ["cpu"]
    chosen = present[0] if name == "auto" else "cuda:0" if name == "cuda" else name  # indexed, as set_device needs
    if chosen not in present:
        sys.exit(f"error: --device={name} is not here; use auto or one of {', '.join(present)}")
    built = [int(arch[3:].rstrip("af")) for arch in torch.cuda.get_arch_list() if arch.startswith("sm_")]
    major, minor = torch.cuda.get_device_capability(chosen) if built and chosen.startswith("cuda") else (0, 0)
    if major and not any(sm // 10 == major and sm % 10 <= minor for sm in built):  # sm_XY runs on X.Z, Z >= Y
        sys.exit(f"error: this PyTorch has no kernels for compute {major}.{minor}; install its CUDA 12.6 build:"
                 " pip install torch --index-url https://download.pytorch.org/whl/cu126")
    return torch.device(chosen)


def load_text(path):
    """The training text: a regular file (a FIFO would be read forever) of UTF-8 text, neither empty nor binary."""
    try:
        text = Path(path).read_text(encoding="utf-8") if os.path.isfile(path) else None
    except (OSError, UnicodeDecodeError) as error:
        sys.exit(f"error: cannot read {path}: {getattr(error, 'strerror', None) or 'not UTF-8 text'}")
    if not text or "\0" in text:
        sys.exit(f"error: cannot read {path}: " + ("binary" if text else "empty" if text == "" else
                                                   "not a regular file" if os.path.exists(path) else "no such file"))
    return text


def write_atomically(path, data):
    """Write bytes to a new file beside path, then rename it over path; a failed write (a full disk) leaves path."""
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "xb") as file:  # x: never over another file
            file.write(data)
        os.replace(temporary, path)
    except OSError as error:
        if not isinstance(error, FileExistsError) and os.path.exists(temporary):  # ours: it goes
            os.remove(temporary)
        sys.exit(f"error: cannot write {path}: {error.strerror}")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (KeyboardInterrupt, BrokenPipeError) as exception:  # Ctrl-C, or stdout closed early (| head): no traceback
        if isinstance(exception, BrokenPipeError):  # nothing more into the closed pipe, at exit either
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(130 if isinstance(exception, KeyboardInterrupt) else 141)  # the shell's status for SIGINT, SIGPIPE
    except RuntimeError as error:  # out of memory (CPU or GPU) or torch.compile failing: one line, no traceback
        size = re.search(r"(?i)tried to allocate ([\d.]+ \w+)", str(error))
        if size or type(error).__module__ in ("torch._dynamo.exc", "torch._inductor.exc"):
            sys.exit(f"error: out of memory (tried to allocate {size[1]}); try smaller sizes" if size else
                     f"error: torch.compile failed ({str(error).splitlines()[0]}); run with --compile=False")
        raise
