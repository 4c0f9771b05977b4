"""The same MLP, initialised with care and normalised: Kaiming initialisation and BatchNorm.

The fourth file of names/ (makemore, part 3). names/mlp.py starts from N(0, 1)
weights: its first loss is near 25 where a uniform guess costs log(vocab_size), and
its tanh units are saturated (|t| near 1, where no gradient flows back). Here the
hidden layer's weights are drawn with Kaiming's std, (5/3) / sqrt(fan_in) for tanh;
the output layer is scaled down so that the first softmax is unsure; and a
BatchNorm1d, written out below as torch.nn.BatchNorm1d computes it, normalises
each hidden unit over the batch before the tanh. BatchNorm's shift makes the
linear layer's bias redundant, so that layer has none. After training, one line per
tanh layer gives the health check the lecture teaches to read: its activations'
std and how many are saturated; --plot_path draws their histogram (matplotlib).
It reaches val loss 2.09 on the lecture's list (2.11 on names/names.txt) in about
a minute on one CPU thread.

Departures from the lecture: 200,000 SGD steps of 32 with a step decay there;
here 8,000 AdamW steps of 1,024 with the step size decayed on a cosine to min_lr.

    python names/batchnorm.py
    python names/batchnorm.py --plot_path=tanh.png
"""

import argparse
import io
import math
import os
import random
import re
import sys
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn import functional as F

# hyperparameters (each can be set on the command line: --name=value)
batch_size = 1024  # training examples per step
block_size = 3  # context length: how many characters the next one is predicted from
n_embd = 10  # dimensions of each character's embedding
n_hidden = 200  # units of the tanh hidden layer
max_iters = 8000  # optimizer steps
eval_interval = 2000  # steps between loss estimates
eval_iters = 20  # batches averaged per loss estimate
learning_rate = 1e-2  # AdamW step size at the start
min_lr = 1e-5  # the step size the cosine schedule ends at, at max_iters
num_samples = 20  # names sampled after training
device = "auto"  # 'auto' picks cuda, then mps, then cpu
data_path = str(Path(__file__).with_name("names.txt"))  # training names: a UTF-8 file, one name per line
seed = 2147483647  # random seed for torch (the lecture's): the same seed gives the same run
out_path = ""  # file the sampled names are also written to ('' = printed only)
plot_path = ""  # .png, .svg or .pdf file for the histogram of each tanh layer's activations ('' = none)
HYPERPARAMETERS = [name for name, value in globals().items()  # the names above: --name=value sets them
                   if not name.startswith("_") and isinstance(value, (bool, int, float, str))]
# the smallest value of each number, checked by parse_args
LOWEST = dict(batch_size=2, block_size=1, n_embd=1, n_hidden=1, max_iters=0, eval_interval=1, eval_iters=1,
              num_samples=0, seed=0, min_lr=0)


def check_hyperparameters():
    """A value no run can use stops the run here, with one line."""
    if learning_rate <= 0 or min_lr > learning_rate:
        sys.exit(f"error: need --learning_rate > 0 and --min_lr <= --learning_rate; got {learning_rate} and {min_lr}")
    if plot_path and Path(plot_path).suffix.lower() not in (".png", ".svg", ".pdf"):
        sys.exit(f"error: --plot_path={plot_path}: the plot is drawn as .png, .svg or .pdf")


# ---- data -----------------------------------------------------------------

def read_words(text):
    """The names: the file's non-empty lines, stripped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def build_tokenizer(words):
    """'.' (a name's start and end) is token 0; the names' own characters follow, sorted."""
    chars = sorted(set("".join(words)))
    if "." in chars:
        sys.exit("error: a name contains '.', the token that marks where names start and end")
    stoi = {ch: i for i, ch in enumerate(["."] + chars)}
    itos = {i: ch for ch, i in stoi.items()}
    return stoi, itos


def split_words(words):
    """The lecture's split: shuffled with Python's random seeded 42, then 80% train, 10% val, 10% test."""
    words = list(words)
    random.seed(42)
    random.shuffle(words)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    if n1 == n2:
        sys.exit(f"error: {len(words)} name(s) are too few: the val split (10%) would be empty; give at least 6")
    return words[:n1], words[n1:n2], words[n2:]


def build_dataset(words, stoi):
    """Every (context, next character) pair of the words, each word framed by '.':
    the context is the block_size characters before: X (N, block_size), Y (N,)."""
    X, Y = [], []
    for w in words:
        context = [0] * block_size  # '.' * block_size: the name starts
        for ch in w + ".":
            ix = stoi[ch]
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]  # the next context: one character on
    return torch.tensor(X), torch.tensor(Y)


# ---- model ----------------------------------------------------------------

class BatchNorm1d(nn.Module):
    """torch.nn.BatchNorm1d(dim, eps, momentum) written out. In training mode each unit is
    normalised with the batch's mean and variance, then scaled by weight and shifted by bias
    (the lecture's gamma and beta), and running estimates of the mean and variance are kept;
    in eval mode (.eval()) those estimates stand in for the batch's, so that one example can
    be fed alone."""

    def __init__(self, dim, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(dim))  # gamma
        self.bias = nn.Parameter(torch.zeros(dim))  # beta
        self.register_buffer("running_mean", torch.zeros(dim))  # buffers: saved with the model, not trained
        self.register_buffer("running_var", torch.ones(dim))

    def forward(self, x):
        if self.training:
            mean = x.mean(0)  # (dim,): each unit's mean over the batch
            var = x.var(0, correction=0)  # biased, as torch normalises (the lecture's x.var(0) is unbiased)
            with torch.no_grad():  # running estimates: (1 - momentum) * old + momentum * new
                n = x.numel() // x.shape[-1]
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * n / (n - 1), self.momentum)  # unbiased, as torch keeps it
        else:
            mean, var = self.running_mean, self.running_var
        return self.weight * (x - mean) / torch.sqrt(var + self.eps) + self.bias


class MLP(nn.Module):
    """Embed each character of the context, concatenate the vectors, a BatchNorm'ed tanh hidden layer, the logits."""

    def __init__(self, vocab_size):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Embedding(vocab_size, n_embd),  # C: (B, block_size) -> (B, block_size, n_embd); N(0, 1)
            nn.Flatten(),  # the context's vectors side by side: (B, block_size * n_embd)
            nn.Linear(block_size * n_embd, n_hidden, bias=False), BatchNorm1d(n_hidden), nn.Tanh(),  # (B, n_hidden)
            nn.Linear(n_hidden, vocab_size),  # (B, vocab_size) logits
        )
        for layer in self.layers:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="tanh")  # std (5/3) / sqrt(fan_in)
        with torch.no_grad():
            self.layers[-1].weight *= 0.1  # small logits: the first softmax is near uniform
            self.layers[-1].bias.zero_()

    def forward(self, idx):
        return self.layers(idx)


# ---- training -------------------------------------------------------------

def get_batch(X, Y):
    """batch_size random examples of a split: contexts x and next characters y."""
    ix = torch.randint(len(X), (batch_size,), device=X.device)
    return X[ix], Y[ix]


@torch.no_grad()
def estimate_loss(model, splits):
    """Mean loss over eval_iters random batches of each split, with the model in eval mode."""
    model.eval()
    out = {split: torch.stack([F.cross_entropy(model(x), y) for x, y in
                               (get_batch(X, Y) for _ in range(eval_iters))]).mean().item()
           for split, (X, Y) in splits.items()}
    model.train()
    return out


def lr_at(step):
    """Cosine decay from learning_rate at step 0 to min_lr at max_iters."""
    return min_lr + 0.5 * (learning_rate - min_lr) * (1 + math.cos(math.pi * step / max(1, max_iters)))


def train(model, splits):
    """max_iters AdamW steps on random batches, with the losses every eval_interval steps and at the end."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    for step in range(max_iters + 1):
        if step % eval_interval == 0 or step == max_iters:
            losses = estimate_loss(model, splits)
            print(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}", flush=True)
            if not math.isfinite(losses["train"] + losses["val"]):  # NaN or inf: training will not recover
                sys.exit(f"error: the loss is not finite at step {step}; try a smaller --learning_rate")
        if step < max_iters:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            x, y = get_batch(*splits["train"])
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


# ---- the health check -----------------------------------------------------

@torch.no_grad()
def tanh_health(model, x):
    """Print each tanh layer's mean, std and saturation (the share of |t| > 0.97, where almost no
    gradient flows back) on the contexts x, in eval mode; return the activations, for plot_activations()."""
    model.eval()
    activations = {}
    for i, layer in enumerate(model.layers):
        x = layer(x)
        if isinstance(layer, nn.Tanh):
            saturated = (x.abs() > 0.97).float().mean().item() * 100
            print(f"layer {i} (Tanh): mean {x.mean().item():+.2f}, std {x.std().item():.2f},"
                  f" saturated {saturated:.2f}%")
            activations[f"layer {i} (Tanh)"] = x.flatten().cpu()
    model.train()
    return activations


def plot_activations(activations):
    """The histogram of each tanh layer's activations, drawn into plot_path."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print(f"note: --plot_path needs matplotlib (pip install matplotlib); {plot_path} not drawn")
        return
    figure = Figure(figsize=(10, 4))
    axes = figure.subplots()
    for label, t in activations.items():
        counts, edges = torch.histogram(t, bins=50, range=(-1.0, 1.0), density=True)
        axes.plot(edges[:-1] + (edges[1] - edges[0]) / 2, counts, label=label)
    axes.set(title="activation distribution", xlabel="tanh output", ylabel="density")
    axes.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(plot_path).suffix[1:].lower())
    write_atomically(plot_path, buffer.getvalue())


# ---- loss and sampling ----------------------------------------------------

@torch.no_grad()
def split_loss(model, X, Y):
    """Mean negative log-likelihood of the next character over a whole split, 10,000 pairs at a time,
    with the model in eval mode."""
    model.eval()
    total = sum(F.cross_entropy(model(X[i:i + 10_000]), Y[i:i + 10_000], reduction="sum").item()
                for i in range(0, len(X), 10_000))
    model.train()
    return total / len(X)


@torch.no_grad()
def sample_names(model, itos, torch_device):
    """num_samples names, each drawn a character at a time from the model until it draws '.'."""
    names = []
    for _ in range(num_samples):
        context, name = [0] * block_size, ""
        while len(name) < 50:  # a name not ended by 50 characters is cut there
            probs = F.softmax(model(torch.tensor([context], device=torch_device)), dim=-1)  # (1, vocab_size)
            ix = torch.multinomial(probs[0], num_samples=1).item()
            if ix == 0:
                break
            name += itos[ix]
            context = context[1:] + [ix]
        names.append(name)
    return names


def main(argv):
    parse_args(argv)  # --name=value for the hyperparameters above
    check_hyperparameters()
    torch_device = pick_device(device)
    words = read_words(load_text(data_path))
    stoi, itos = build_tokenizer(words)
    train_words, val_words, test_words = split_words(words)  # the test split is kept aside, as in the lecture
    print(f"{len(stoi)} tokens: '.' and {''.join(list(stoi)[1:])!r}")
    print(f"{len(words):,} names: {len(train_words):,} train, {len(val_words):,} val, {len(test_words):,} test")
    torch.manual_seed(seed)
    Xtr, Ytr = (t.to(torch_device) for t in build_dataset(train_words, stoi))
    Xval, Yval = (t.to(torch_device) for t in build_dataset(val_words, stoi))

    model = MLP(len(stoi)).to(torch_device)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters, training on {torch_device}")
    train(model, {"train": (Xtr, Ytr), "val": (Xval, Yval)})
    activations = tanh_health(model, Xtr[torch.randint(len(Xtr), (1000,), device=torch_device)])  # 1,000 contexts
    if plot_path:
        plot_activations(activations)
    print(f"train loss {split_loss(model, Xtr, Ytr):.4f}")
    print(f"val loss {split_loss(model, Xval, Yval):.4f}")

    model.eval()  # sample with training-only behaviour switched off
    names = sample_names(model, itos, torch_device)
    print("\n".join(names))
    seen = set(train_words)
    print(f"{sum(name in seen for name in names)} of these {len(names)} names are training names")
    if out_path:
        write_atomically(out_path, "".join(f"{name}\n" for name in names).encode("utf-8"))


# ---- the same in every script: command line, device, text, files ------------

def parse_args(argv):
    """Set the hyperparameters above from --name=value or --name value, check them alone; return the names given."""
    comments = dict(re.findall(r"^(\w+) = .*?  # (.*)$", Path(__file__).read_text(encoding="utf-8"), re.M))
    parser = argparse.ArgumentParser(prog=f"python {Path(__file__).name}", usage="%(prog)s [--name=value ...]",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False, argument_default=argparse.SUPPRESS)
    for name, kind in [(n, type(globals()[n])) for n in HYPERPARAMETERS]:  # typed by its default
        parser.add_argument(f"--{name}", type={bool: boolean}.get(kind, kind), metavar=kind.__name__,
                            help=f"{comments[name]} (default: {globals()[name]})".replace("%", "%%"))
    given = vars(parser.parse_args(argv))
    if bad := [n for n, value in given.items() if type(value) in (int, float)  # no NaN, inf, or int past 2**31
               and not abs(value) < (2**31 if type(value) is int else math.inf)]:
        parser.error(f"argument --{bad[0]}: must be finite, and an integer below 2**31 in size; got {given[bad[0]]}")
    globals().update(given)
    for name, low in LOWEST.items():
        if globals()[name] < low:
            sys.exit(f"error: --{name} must be at least {low}, got {globals()[name]}")
    written = {os.path.realpath(data_path)}  # the text is read, never written
    for name in [n for n in HYPERPARAMETERS if n.endswith("_path") and n != "data_path" and globals()[n]]:
        path, real = globals()[name], os.path.realpath(globals()[name])  # real: the file itself, through any link
        if os.path.exists(path) and name in given and name != "ckpt_path":  # a checkpoint's rules: open_checkpoint
            sys.exit(f"error: --{name}={path} exists, and a run writes only new files: remove it or pass another")
        if real in written or os.path.isdir(path) or not os.access(os.path.dirname(real), os.W_OK):
            sys.exit(f"error: --{name}={path}: the text, another output, a directory, or in a read-only folder")
        written.add(real)
    return set(given)


def boolean(text):
    """argparse's type for a bool: True/False, true/false or 1/0."""
    if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError
    return text.lower() in ("true", "1")


def pick_device(name):
    """'auto' picks cuda:0, then mps, then cpu; any other name must be a device present here ('cuda' is cuda:0)."""
    present = [f"cuda:{i}" for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)]
    present += ["mps"] * torch.backends.mps.is_available() + ["cpu"]
    chosen = present[0] if name == "auto" else "cuda:0" if name == "cuda" else name  # indexed, as set_device needs
    if chosen not in present:
        sys.exit(f"error: --device={name} is not here; use auto or one of {', '.join(present)}")
    return torch.device(chosen)


def load_text(path):
    """The training text, or a one-line error."""
    if not os.path.isfile(path):  # missing, a directory, or a FIFO or a device, which would be read forever
        sys.exit(f"error: cannot read {path}: {'not a regular file' if os.path.exists(path) else 'no such file'}")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:  # unreadable, not UTF-8
        sys.exit(f"error: cannot read {path}: {getattr(error, 'strerror', None) or 'not UTF-8 text'}")
    if not text or "\0" in text:
        sys.exit(f"error: {path} is {'binary' if text else 'empty'}")
    return text


def write_atomically(path, data):
    """Write bytes to a new file beside path (mode x: never over another file), then rename it over path."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "xb") as file:
        file.write(data)
    os.replace(temporary, path)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:  # Ctrl-C: the shell's status for it, and no traceback
        sys.exit(130)
    except RuntimeError as error:  # out of memory, on the CPU or a GPU: one line that names the size
        if not (size := re.search(r"(?i)tried to allocate ([\d.]+ \w+)", str(error))):
            raise
        sys.exit(f"error: out of memory (tried to allocate {size[1]}); try smaller sizes")
