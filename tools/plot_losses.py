"""Draw the val-loss curves of training_logs.md: one panel per corpus, one line per run.

    pip install matplotlib   # optional: only this figure needs it
    python tools/plot_losses.py [--logs=training_logs.md] [--out=loss_curves.png]
"""

import sys
from pathlib import Path

import runlog


USAGE = "usage: python tools/plot_losses.py [--logs=training_logs.md] [--out=loss_curves.png]"


def main(argv):
    options = dict(arg.split("=", 1) for arg in argv if "=" in arg)
    if len(options) != len(argv) or not set(options) <= {"--logs", "--out"}:
        sys.exit(USAGE)
    logs = Path(options.get("--logs", runlog.ROOT / "training_logs.md"))
    out = Path(options.get("--out", runlog.ROOT / "loss_curves.png"))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("error: this figure needs matplotlib: pip install matplotlib")
    try:
        sections = runlog.read_sections(logs.read_text(encoding="utf-8"))
    except OSError as error:
        sys.exit(f"error: cannot read {logs}: {error.strerror}")
    corpora = list(dict.fromkeys(data for _, data, _, _ in sections))
    if not corpora:
        sys.exit(f"error: no runs found in {logs}")
    figure, axes = plt.subplots(1, len(corpora), figsize=(6 * len(corpora), 4.5), squeeze=False, sharey=True)
    for ax, corpus in zip(axes[0], corpora):
        for version, data, seed, points in sections:
            if data == corpus and points:
                label = version + (f" (seed {seed})" if seed else "")
                ax.plot(*zip(*points), label=label, linewidth=1.2)
        ax.set(title=corpus, xlabel="step", yscale="log")  # log: the late, small gains stay visible
        ax.set_yticks([1.4, 1.5, 1.6, 1.8, 2.0, 2.5, 3.0, 4.0], labels=["1.4", "1.5", "1.6", "1.8", "2.0", "2.5", "3.0", "4.0"])
        ax.minorticks_off()
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    axes[0][0].set_ylabel("val loss")
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
