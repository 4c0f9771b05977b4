"""Two moons, learned with micrograd alone: a scalar engine is enough to train a real classifier.

Two interleaving half circles of noisy points, labelled -1 and +1, are separated by an
MLP trained with a max-margin loss and plain SGD, every gradient coming from engine.py's
backward(). No torch, no numpy: the data is made here from a seeded random.Random.

    python micrograd/moons.py
    python micrograd/moons.py --max_iters=50 --plot_path=moons.png
"""

import argparse
import math
import os
import random
import sys
import tokenize
from pathlib import Path

from nn import MLP  # nn.py sits beside this file, and Python puts a script's folder on sys.path

# hyperparameters (each can be set on the command line: --name=value)
n_samples = 100  # training points, half on each moon
noise = 0.1  # standard deviation of the Gaussian noise added to each coordinate
n_hidden = 8  # neurons in each hidden layer (the original demo's 16 takes about 6 times as long)
n_layers = 2  # hidden ReLU layers before the linear output neuron
max_iters = 100  # SGD steps, each one on all the points
learning_rate = 1.0  # the first step size; it decays linearly to a tenth of this
alpha = 1e-4  # weight of the L2 penalty alpha * sum(p^2), which keeps the weights small
eval_interval = 10  # steps between progress lines
seed = 1337  # seeds the data and the initial weights: the same seed gives the same run
plot_path = ""  # image file for the decision boundary, e.g. moons.png ('' = none; needs matplotlib)
# the names above: the ones --name=value may set
HYPERPARAMETERS = [name for name, value in globals().items()
                   if not name.startswith("_") and isinstance(value, (int, float, str))]
# the lowest and highest value of each number (ints: a whole number): larger sizes make a step's graph of Values
# outgrow the memory (1,000 points through 3 layers of 32 neurons take about 2 GB); a learning_rate of 10 blows up
RANGES = {"n_samples": (2, 1000), "noise": (0.0, 1.0), "n_hidden": (1, 32), "n_layers": (0, 3),
          "max_iters": (0, 10_000), "learning_rate": (0.0, 10.0), "alpha": (0.0, 1.0), "eval_interval": (1, 10_000),
          "seed": (0, 2**64 - 1)}


def make_moons(n, noise, rng):
    """n points, alternately on the upper half circle around (0, 0), label -1, and on the
    lower one around (1, 0.5), label +1, which reaches into the first; then Gaussian noise."""
    X, y = [], []
    for i in range(n):
        t = rng.uniform(0, math.pi)  # where on its half circle
        if i % 2 == 0:
            point, label = (math.cos(t), math.sin(t)), -1
        else:
            point, label = (1 - math.cos(t), 0.5 - math.sin(t)), 1
        X.append([c + rng.gauss(0, noise) for c in point])
        y.append(label)
    return X, y


def loss_and_accuracy(model, X, y):
    """The loss to minimise, a Value, and the fraction of points on the right side of the boundary."""
    scores = [model(x) for x in X]
    # max-margin: nothing to pay once a point is on its side by a margin of 1, linear in the shortfall
    data_loss = sum((1 - yi * score).relu() for yi, score in zip(y, scores)) / len(X)
    reg_loss = alpha * sum(p ** 2 for p in model.parameters())
    accuracy = sum((score.data > 0) == (yi > 0) for yi, score in zip(y, scores)) / len(X)
    return data_loss + reg_loss, accuracy


def train(model, X, y):
    """max_iters steps of gradient descent on all the points; returns the loss and accuracy after the last one."""
    for k in range(max_iters + 1):  # one more loss than steps: the one after the last step
        loss, accuracy = loss_and_accuracy(model, X, y)
        if not math.isfinite(loss.data):  # the weights blew up: a score beyond the largest float, or inf - inf
            sys.exit(f"error: the loss is not finite at step {k}; try a smaller --learning_rate")
        if k == max_iters:
            return loss, accuracy
        model.zero_grad()
        loss.backward()
        step_size = learning_rate * (1.0 - 0.9 * k / max_iters)  # big steps first, finer ones at the end
        for p in model.parameters():
            p.data -= step_size * p.grad
        if k % eval_interval == 0:
            print(f"step {k}: loss {loss.data:.4f}, accuracy {accuracy:.0%}")


def save_plot(model, X, y, path):
    """The plane coloured by the sign of the model's score, with the training points on top."""
    import matplotlib  # installed: parse_args has checked
    matplotlib.use("Agg")  # draw into a file: no display needed
    import matplotlib.pyplot as plt
    # a 50 x 50 grid over the points' range and half a unit more on every side
    lows, highs = [min(x[i] for x in X) - 0.5 for i in (0, 1)], [max(x[i] for x in X) + 0.5 for i in (0, 1)]
    gx, gy = ([lo + (hi - lo) * j / 49 for j in range(50)] for lo, hi in zip(lows, highs))
    side = [[float(model([a, b]).data > 0) for a in gx] for b in gy]  # 1 where the model says +1
    plt.contourf(gx, gy, side, levels=[-0.5, 0.5, 1.5], colors=["tab:blue", "tab:red"], alpha=0.3)
    plt.scatter([x[0] for x in X], [x[1] for x in X], c=["tab:blue" if t < 0 else "tab:red" for t in y], s=15)
    plt.savefig(path)
    print(f"decision boundary written to {path}")


def parse_args(argv):
    """Set the hyperparameters above from --name=value arguments: a number takes any number (a whole one where
    RANGES gives ints), and the file's own values are checked as the command line's are."""
    with tokenize.open(__file__) as source:  # Python's own reading of this file: a '#' in a string is no comment
        comments = {token.line.split("=")[0].rstrip(): token.string.lstrip("# ")  # name = value  # comment
                    for token in tokenize.generate_tokens(source.readline) if token.type == tokenize.COMMENT}
    parser = argparse.ArgumentParser(prog=Path(__file__).name, usage="python %(prog)s [--name=value ...]",
                                     description=__doc__.splitlines()[0], allow_abbrev=False,
                                     argument_default=argparse.SUPPRESS)
    for name, default in [(name, globals()[name]) for name in HYPERPARAMETERS]:
        parser.add_argument(f"--{name}", type=str if isinstance(default, str) else float,
                            metavar=type(default).__name__, help=f"{comments.get(name, '')} (default: {default!r})")
    given = vars(parser.parse_args(argv))
    args = {name: given.get(name, globals()[name]) for name in HYPERPARAMETERS}  # the file's values, and the given
    for name, value in [(name, value) for name, value in args.items() if not isinstance(value, str)]:
        lowest, highest = RANGES.get(name, (-math.inf, math.inf))
        whole = isinstance(lowest, int) or name not in RANGES and isinstance(globals()[name], int) and value % 1 == 0
        if not (lowest <= value <= highest and (value % 1 == 0 or not whole)):  # NaN and inf fail too
            where = f"--{name}={value:.15g}" if name in given else f"{name} = {value!r} in moons.py"
            sys.exit(f"error: {where}: {name} must be {'a whole number ' * whole}from {lowest} to {highest}")
        args[name] = int(value) if whole else float(value)
    if args["n_samples"] % 2:
        sys.exit(f"error: --n_samples must be even, half the points on each moon; got {args['n_samples']}")
    if args["plot_path"]:  # a plot that cannot be written fails now, not after the training
        folder = Path(args["plot_path"]).absolute().parent
        if os.path.lexists(args["plot_path"]) or not (folder.is_dir() and os.access(folder, os.W_OK)):
            why = "exists" if os.path.lexists(args["plot_path"]) else "is in a read-only folder" if folder.is_dir() \
                else "is in no folder that exists"
            sys.exit(f"error: --plot_path={args['plot_path']} {why}: a run writes only new files")
        try:
            from matplotlib.backend_bases import FigureCanvasBase
        except ImportError:
            sys.exit("error: --plot_path needs matplotlib (pip install matplotlib)")
        formats = FigureCanvasBase.get_supported_filetypes()  # {'png': 'Portable Network Graphics', ...}
        if Path(args["plot_path"]).suffix[1:].lower() not in formats:
            sys.exit(f"error: --plot_path={args['plot_path']}: name an image file, ending in .{', .'.join(formats)}")
    globals().update(args)


def main(argv):
    parse_args(argv)
    random.seed(seed)  # nn.py draws the initial weights from the random module itself
    X, y = make_moons(n_samples, noise, random.Random(seed))
    model = MLP(2, [n_hidden] * n_layers + [1])
    print(f"{n_samples} points, an MLP of {len(model.parameters())} parameters")
    loss, accuracy = train(model, X, y)
    print(f"after {max_iters} steps: loss {loss.data:.4f}, accuracy {accuracy:.0%}")
    if plot_path:
        save_plot(model, X, y, plot_path)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:  # Ctrl-C: the shell's status for it, and no traceback
        sys.exit(130)
    except OverflowError:  # the weights blew up: the square of one, in the L2 penalty, is beyond the largest float
        sys.exit("error: a weight grew too large for a float; try a smaller --learning_rate")
