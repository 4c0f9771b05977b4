"""v5's GPT, fast: the same model and the same training, in a fraction of the time.

New in this file, after v5.py, and nothing but speed: fused q/k/v into scaled_dot_product_attention, bf16 autocast
(fp16 with loss scaling before compute 8.0), TF32, torch.compile, fused AdamW, batches gathered on the device.

    python v6.py                                   # on a GPU
    python v6.py --batch_size=32 --block_size=64 --n_embd=128 --n_head=4 --n_layer=4 --max_iters=2000 --eval_iters=50
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
out_path = ""  # file the sample is also written to ('' = printed only)
dtype = "auto"  # what matmuls compute in: bfloat16, float16 or float32 ('auto': by the GPU; float32 off a GPU)
compile = True  # torch.compile the training step on CUDA (never on CPU or mps)
HYPERPARAMETERS = [name for name, value in globals().items()  # the names above: --name=value sets them
                   if not name.startswith("_") and isinstance(value, (bool, int, float, str))]
# the smallest value of each number, checked by parse_args; an int makes it whole (a size, a count)
LOWEST = dict(batch_size=1, block_size=1, max_iters=0, eval_interval=1, max_new_tokens=0, seed=0,
              eval_iters=1, n_embd=1, n_head=1, n_layer=1)


def check_hyperparameters():
    """A value no run can use stops the run here, with one line."""
    if learning_rate <= 0:
        sys.exit(f"error: --learning_rate must be above 0, got {learning_rate}")
    if n_embd % n_head:  # every head gets the same share of the embedding
        sys.exit(f"error: --n_embd={n_embd} must be a multiple of --n_head={n_head}")
    if not 0 <= dropout < 1:
        sys.exit(f"error: --dropout must be at least 0 and below 1, got {dropout}")
    if dtype not in ("auto", "bfloat16", "float16", "float32"):
        sys.exit(f"error: --dtype must be auto, bfloat16, float16 or float32, got {dtype}")


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
    ix = torch.randint(len(data) - block_size, (batch_size, 1), device=data.device)
    windows = data[ix + torch.arange(block_size + 1, device=data.device)]  # one gather: (B, T + 1)
    return windows[:, :-1], windows[:, 1:]  # (B, T) each


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
    """Token and position embeddings, self-attention, then a linear map to next-token logits."""

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

def precision(device):
    """The dtype to compute in. 'auto': bfloat16 from compute capability 8.0 on, whose tensor cores multiply it fast;
    float16 on an older GPU (T4, V100), which would emulate bfloat16 slowly, though is_bf16_supported() says True."""
    if dtype == "auto" and device.type == "cuda":
        return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16
    return getattr(torch, "float32" if dtype == "auto" else dtype)  # float32 off a GPU


def autocast(device):
    """Autocast to the precision's dtype on tensor cores, several times faster than float32; none in float32."""
    return torch.autocast(device.type, dtype=precision(device), enabled=precision(device) != torch.float32)


def compile_off(device):
    """Why the training step runs uncompiled ('' where torch.compile is on): it needs CUDA and a working Triton."""
    if not compile or device.type != "cuda":
        return "--compile=False" if not compile else "not CUDA"
    try:  # what Inductor itself asks, in a private module: a release that moves it means no compile
        from torch.utils._triton import has_triton
        return "" if has_triton() else "no working Triton"
    except ImportError:
        return "no working Triton"


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
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, fused=train_data.device.type == "cuda")
    scaler = torch.amp.GradScaler(train_data.device.type, enabled=precision(train_data.device) == torch.float16)
    step_model = model if compile_off(train_data.device) else torch.compile(model)  # evaluation, sampling: eager
    for step in range(max_iters + 1):
        if step % eval_interval == 0 or step == max_iters:
            with autocast(train_data.device):
                losses = estimate_loss(model, {"train": train_data, "val": val_data})
            if not math.isfinite(losses["train"] + losses["val"]):  # NaN or inf: training will not recover
                sys.exit(f"error: the loss is not finite at step {step}; try a smaller --learning_rate")
            print(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}", flush=True)
        if step < max_iters:
            with autocast(train_data.device):
                _, loss = step_model(*get_batch(train_data))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()  # float16: the loss scaled up, so that small gradients do not round to 0
            scaler.step(optimizer)  # unscaled first; a step with an inf or a NaN among the gradients is skipped
            scaler.update()  # the scale halves after a skipped step and doubles after 2000 good ones


def main(argv):
    parse_args(argv)  # --name=value for the hyperparameters above
    check_hyperparameters()
    torch.manual_seed(seed)
    torch_device = pick_device(device)
    gpu = ""  # its name and compute capability, on the start-up line
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)  # the GPU that compiled kernels are built and cached for
        torch.set_float32_matmul_precision("high")  # TF32 tensor cores for the matmuls left in float32
        gpu = " ({}, compute {}.{})".format(torch.cuda.get_device_name(), *torch.cuda.get_device_capability())
    scaled, off = " with loss scaling" * (precision(torch_device) == torch.float16), compile_off(torch_device)
    print(f"{torch_device}{gpu}: {precision(torch_device)}{scaled}; torch.compile {'off: ' + off if off else 'on'}")
    text = load_text(data_path)
    encode, decode, vocab_size = build_tokenizer(text)
    train_data, val_data = split_data(torch.tensor(encode(text), dtype=torch.long, device=torch_device))

    model = GPTLanguageModel(vocab_size).to(torch_device)
    operations = 6 * sum(p.numel() for p in model.parameters()) * batch_size * block_size * max_iters
    if device == "auto" and torch_device.type == "cpu" and operations > 2e11 * 3600:  # an hour of a fast CPU
        sys.exit("error: no GPU, and these sizes take hours on a CPU; see --help for a CPU-sized run, or --device=cpu")
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters, training on {torch_device}")
    train(model, train_data, val_data)
    if torch_device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(torch_device) / 2**20:,.0f} MiB")

    model.eval()  # sample with training-only behaviour switched off
    context = torch.zeros((1, 1), dtype=torch.long, device=torch_device)  # start from token 0
    sample = decode(model.generate(context, max_new_tokens)[0].tolist())  # in float32, whatever the GPU
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
