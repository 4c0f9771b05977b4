"""A WaveNet-style hierarchy: the context fused two characters at a time, level by level (makemore, part 5).

names/batchnorm.py squashes its whole context into one hidden layer at once; here (van den Oord et al. 2016) the
block_size = 8 embeddings are fused in pairs: FlattenConsecutive(2) puts each two neighbouring positions side by side,
(B, T, C) -> (B, T / 2, 2C), a Linear, BatchNorm1d and tanh follow, and the next level does the same to the result,
until one position is left. BatchNorm1d now takes (B, T, C) too: each channel's statistics over batch and positions.
"""

import argparse
import math
import os
import random
import re
import sys
import tokenize
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn import functional as F

batch_size = 64  # training examples per step
block_size = 8  # context length, a power of 2: how many characters the next one is predicted from
n_embd = 24  # dimensions of each character's embedding
n_hidden = 128  # units of each level's tanh layer
max_iters = 40000  # optimizer steps (the lecture: 200,000 SGD steps of 32)
eval_interval = 5000  # steps between evaluations of the loss
learning_rate = 2e-3  # AdamW step size at the start
min_lr = 1e-5  # the step size the cosine schedule ends at, at max_iters
num_samples = 20  # names sampled after training
device = "auto"  # 'auto' picks cuda, then mps, then cpu
data_path = str(Path(__file__).with_name("names.txt"))  # training names: a UTF-8 file, one name per line
seed = 2147483647  # random seed for torch (the lecture's): the same seed gives the same run
out_path = ""  # file the sampled names are also written to ('' = printed only)
plot_path = ""  # .png, .svg or .pdf file for the histogram of each tanh layer's activations ('' = none)
HYPERPARAMETERS = [n for n, v in globals().items() if not n.startswith("_") and isinstance(v, (bool, int, float, str))]
LOWEST = dict(batch_size=2, block_size=2, n_embd=1, n_hidden=1, max_iters=0, eval_interval=1, learning_rate=0.0,
              min_lr=0.0, num_samples=0, seed=0)
HIGHEST = dict(batch_size=2**16, block_size=64, n_embd=4096, n_hidden=4096, learning_rate=1e30, min_lr=1e30,
               num_samples=100_000)


def check_hyperparameters():
    """A value no run can use stops the run here, in one line; past HIGHEST, memory, time or float32 runs out."""
    if big := [name for name, high in HIGHEST.items() if globals()[name] > high]:
        sys.exit(f"error: --{big[0]} must be at most {HIGHEST[big[0]]}, got {globals()[big[0]]}")
    if block_size & (block_size - 1):
        sys.exit(f"error: --block_size must be a power of 2 (each level fuses two positions), got {block_size}")
    if plot_path and Path(plot_path).suffix.lower() not in (".png", ".svg", ".pdf"):
        sys.exit(f"error: --plot_path={plot_path}: the plot is drawn as .png, .svg or .pdf")
    if plot_path:  # matplotlib, imported here, before any work: a missing one stops the run
        try:
            import matplotlib.figure  # noqa: F401 (tanh_health draws with it)
        except ImportError:
            sys.exit("error: --plot_path needs matplotlib (pip install matplotlib)")


def build_tokenizer(words):
    """stoi and itos: '.', where a name starts and ends, is token 0; the names' characters follow, sorted."""
    itos = ["."] + sorted(set("".join(words)))
    if "." in itos[1:]:
        sys.exit("error: a name contains '.', the token that marks where names start and end")
    return {ch: i for i, ch in enumerate(itos)}, itos


def split_words(words):
    """The lecture's split: shuffled in place, Python's random seeded 42; 80% train, 10% val, 10% test (kept aside)."""
    random.Random(42).shuffle(words)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    if n1 == n2:
        sys.exit(f"error: {len(words)} name(s) are too few: the val split (10%) would be empty; give at least 6")
    return words[:n1], words[n1:n2], words[n2:]


def build_dataset(words, stoi, torch_device):
    """Every (context, next character) pair of the words framed by '.': X (N, block_size), the characters before."""
    X, Y = [], []
    for w in words:
        ids = [0] * block_size + [stoi[ch] for ch in w + "."]  # '.' * block_size starts the name
        X += [ids[i:i + block_size] for i in range(len(w) + 1)]  # each block_size characters in turn
        Y += ids[block_size:]  # and the character after each
    return torch.tensor(X, device=torch_device), torch.tensor(Y, device=torch_device)


class FlattenConsecutive(nn.Module):
    """(B, T, C) -> (B, T // n, C * n): each n consecutive positions side by side; (B, C * n) at the last level."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def forward(self, x):
        B, T, C = x.shape
        x = x.view(B, T // self.n, C * self.n)
        return x.squeeze(1) if x.shape[1] == 1 else x  # one position left: (B, C * n)


class BatchNorm1d(nn.Module):
    """torch.nn.BatchNorm1d written out: each unit normalised over the batch, then scaled and shifted (gamma, beta).
    Input (B, dim), or (B, T, dim) with statistics over B and T (torch's BatchNorm1d wants (B, dim, T) for that)."""

    def __init__(self, dim):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim))  # gamma, beta
        self.register_buffer("running_mean", torch.zeros(dim))  # buffers: moved and saved with the model, not trained
        self.register_buffer("running_var", torch.ones(dim))

    def forward(self, x):
        dims = (0, 1) if x.ndim == 3 else 0  # (B, T, dim): over the batch and the positions
        mean, var = self.running_mean, self.running_var  # eval mode: the running estimates, for one example alone
        if self.training:  # the batch's; the running estimates move 0.1 of the way to them (torch's momentum)
            mean, var = x.mean(dims), x.var(dims, correction=0)  # biased, as torch normalises
            self.running_mean.lerp_(mean.detach(), 0.1)
            self.running_var.lerp_(x.detach().var(dims), 0.1)  # unbiased, as torch keeps it
        return self.weight * (x - mean) / torch.sqrt(var + 1e-5) + self.bias  # 1e-5: torch's eps


class WaveNet(nn.Sequential):
    """Embed each character of the context, then fuse neighbours two at a time, level by level, then the logits."""

    def __init__(self, vocab_size):
        layers, width = [nn.Embedding(vocab_size, n_embd)], n_embd  # (B, block_size, n_embd); N(0, 1)
        for _ in range(block_size.bit_length() - 1):  # log2(block_size) levels, each halving T
            layers += [FlattenConsecutive(2), nn.Linear(2 * width, n_hidden, bias=False),  # (B, T / 2, n_hidden)
                       BatchNorm1d(n_hidden), nn.Tanh()]
            width = n_hidden
        super().__init__(*layers, nn.Linear(n_hidden, vocab_size))  # (B, vocab_size) logits
        for layer in self:
            if isinstance(layer, nn.Linear):  # Kaiming: std (5/3) / sqrt(fan_in), the gain for tanh
                nn.init.kaiming_normal_(layer.weight, nonlinearity="tanh")
        self[-1].weight.data *= 0.1  # small logits: the first softmax is near uniform
        self[-1].bias.data.zero_()


def train(model, splits):
    """AdamW steps on random batches, the step size decayed on a cosine to min_lr; the losses every eval_interval."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    X, Y = splits["train"]
    for step in range(max_iters):
        if step % eval_interval == 0:
            model.eval()  # BatchNorm: the running estimates, as after training
            losses = ", ".join(f"{split} loss {split_loss(model, *XY):.4f}" for split, XY in splits.items())
            print(f"step {step}: {losses}", flush=True)
            model.train()
        lr = min_lr + 0.5 * (learning_rate - min_lr) * (1 + math.cos(math.pi * step / max_iters))
        optimizer.param_groups[0]["lr"] = lr
        ix = torch.randint(len(X), (batch_size,), device=X.device)  # a random batch
        loss = F.cross_entropy(model(X[ix]), Y[ix])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@torch.no_grad()
def tanh_health(model, x):
    """Print each tanh layer's mean, std and saturation (share of |t| > 0.97) on contexts x; plot_path: histograms."""
    activations = {}
    for i, layer in enumerate(model):
        x = layer(x)
        if isinstance(layer, nn.Tanh):
            activations[f"layer {i} (Tanh)"] = x.flatten().cpu()
            print(f"layer {i} (Tanh): mean {x.mean():+.2f}, std {x.std():.2f},"
                  f" saturated {(x.abs() > 0.97).float().mean():.2%}")  # where almost no gradient flows back
    if plot_path:
        from matplotlib.figure import Figure  # importable: checked before the training
        axes = Figure(figsize=(10, 4)).subplots()
        for label, t in activations.items():
            axes.hist(t.numpy(), bins=50, range=(-1, 1), histtype="step", label=label)
        axes.legend()
        axes.figure.savefig(plot_path)


@torch.no_grad()
def split_loss(model, X, Y):
    """Mean negative log-likelihood of the next character over a whole split, 4,096 pairs at a time."""
    total = sum(F.cross_entropy(model(x), y, reduction="sum").item() for x, y in zip(X.split(4096), Y.split(4096)))
    if not math.isfinite(total):  # NaN or inf: the training blew up
        sys.exit("error: the loss is not finite: the training blew up; try a smaller --learning_rate")
    return total / len(X)


@torch.no_grad()
def sample_name(model, itos, torch_device):
    """A name drawn from the model a character at a time, until it draws '.' (or 50 characters are drawn)."""
    context, name = [0] * block_size, ""  # '.' * block_size: the name starts
    while len(name) < 50:
        probs = F.softmax(model(torch.tensor([context], device=torch_device)), dim=-1)  # (1, vocab_size)
        ix = torch.multinomial(probs[0], num_samples=1).item()
        if ix == 0:
            break
        name += itos[ix]
        context = context[1:] + [ix]  # one character on
    return name


def main(argv):
    parse_args(argv)  # --name=value for the hyperparameters above
    check_hyperparameters()
    torch_device = pick_device(device)
    words = [line.strip() for line in load_text(data_path).splitlines() if line.strip()]  # the names
    stoi, itos = build_tokenizer(words)
    splits = {split: build_dataset(w, stoi, torch_device) for split, w in zip(["train", "val"], split_words(words))}

    torch.manual_seed(seed)
    model = WaveNet(len(stoi)).to(torch_device)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters, training on {torch_device}")
    train(model, splits)
    model.eval()  # from here on, BatchNorm uses its running estimates
    tanh_health(model, splits["val"][0])
    for split, (X, Y) in splits.items():
        print(f"{split} loss {split_loss(model, X, Y):.4f}")

    names = [sample_name(model, itos, torch_device) for _ in range(num_samples)]
    print("\n".join(names))
    if out_path:
        write_atomically(out_path, "".join(f"{name}\n" for name in names).encode("utf-8"))


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
