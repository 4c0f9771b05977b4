"""Names from counts: how often each character follows each other one, as a table.

The first file of names/, the prequel to the GPT (makemore, part 1). A name is read
between boundary tokens: ".emma." gives the pairs (., e) (e, m) (m, m) (m, a) (a, .).
Counting the pairs of the training names, adding `smoothing` to every count (no
pair gets probability 0) and dividing each row by its sum gives the bigram model;
its loss is the mean negative log-likelihood of each next character. There is no
gradient descent: the table is the answer, the loss that names/bigram.py reaches by
training. Everything but the model stays in every later file of names/: the words
and their split, the dataset of (context, next character) pairs, the loss over a
whole split and the sampling of names. It reaches val loss 2.4533 on the lecture's
list (2.4541 on names/names.txt) in about 2 seconds on a CPU.

    python names/counts.py
    python names/counts.py --smoothing=0 --num_samples=50
"""

import argparse
import math
import os
import random
import re
import sys
from pathlib import Path

import torch
from torch.nn import functional as F

# hyperparameters (each can be set on the command line: --name=value)
smoothing = 1.0  # added to every count before the rows are normalised (0: none, and unseen pairs cost inf)
num_samples = 20  # names sampled after training
device = "auto"  # 'auto' picks cuda, then mps, then cpu
data_path = str(Path(__file__).with_name("names.txt"))  # training names: a UTF-8 file, one name per line
seed = 2147483647  # random seed for torch (the lecture's): the same seed gives the same run
out_path = ""  # file the sampled names are also written to ('' = printed only)
HYPERPARAMETERS = [name for name, value in globals().items()  # the names above: --name=value sets them
                   if not name.startswith("_") and isinstance(value, (bool, int, float, str))]
LOWEST = dict(num_samples=0, seed=0, smoothing=0)  # the smallest value of each number, checked by parse_args


def check_hyperparameters():
    """A value no run can use stops the run here, with one line."""


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
    the context is the one character before: X (N,), Y (N,)."""
    X, Y = [], []
    for w in words:
        context = 0  # '.': the name starts
        for ch in w + ".":
            ix = stoi[ch]
            X.append(context)
            Y.append(ix)
            context = ix  # the next context: this character
    return torch.tensor(X), torch.tensor(Y)


# ---- model ----------------------------------------------------------------

class BigramCounts:
    """Row i of P is the distribution of the character after character i: smoothed counts, normalised."""

    def __init__(self, X, Y, vocab_size):
        N = torch.bincount(X * vocab_size + Y, minlength=vocab_size**2).view(vocab_size, vocab_size)  # N[i, j]
        P = N.float() + smoothing
        self.P = P / P.sum(1, keepdim=True)

    def __call__(self, idx):
        return self.P[idx].log()  # logits, as a network gives them: softmax(log P[i]) = P[i]


# ---- loss and sampling ----------------------------------------------------

@torch.no_grad()
def split_loss(model, X, Y):
    """Mean negative log-likelihood of the next character over a whole split, 10,000 pairs at a time."""
    total = sum(F.cross_entropy(model(X[i:i + 10_000]), Y[i:i + 10_000], reduction="sum").item()
                for i in range(0, len(X), 10_000))
    return total / len(X)


@torch.no_grad()
def sample_names(model, itos, torch_device):
    """num_samples names, each drawn a character at a time from the model until it draws '.'."""
    names = []
    for _ in range(num_samples):
        context, name = 0, ""
        while len(name) < 50:  # a name not ended by 50 characters is cut there
            probs = F.softmax(model(torch.tensor([context], device=torch_device)), dim=-1)  # (1, vocab_size)
            ix = torch.multinomial(probs[0], num_samples=1).item()
            if ix == 0:
                break
            name += itos[ix]
            context = ix
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

    model = BigramCounts(Xtr, Ytr, len(stoi))  # training is counting
    print(f"{model.P.numel():,} parameters, training on {torch_device}")
    train_loss, val_loss = split_loss(model, Xtr, Ytr), split_loss(model, Xval, Yval)
    print(f"step 0: train loss {train_loss:.4f}, val loss {val_loss:.4f}")
    print(f"train loss {train_loss:.4f}")
    print(f"val loss {val_loss:.4f}")

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
