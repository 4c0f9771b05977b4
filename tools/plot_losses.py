"""Draw the val-loss curves of training_logs.md: one panel per corpus, one line per run.

    pip install matplotlib   # optional: only this figure needs it
    python tools/plot_losses.py [--logs=training_logs.md] [--out=loss_curves.png]

A version has the same colour in every panel; runs of one version on one corpus
differ in line style, and their labels say what tells them apart.
"""

import sys
from collections import Counter, defaultdict
from pathlib import Path

import runlog


USAGE = "usage: python tools/plot_losses.py [--logs=training_logs.md] [--out=loss_curves.png]"
# solid, dashed, dotted, dash-dot, then (offset, (on, off, ...)) patterns: long dashes, dash-dot-dot
LINE_STYLES = ["-", "--", ":", "-.", (0, (8, 2)), (0, (4, 1, 1, 1, 1, 1))]


def labels(sections):
    """A legend label for each section, unique within its corpus: the version; its device where the
    panel mixes devices (GPU runs and CPU-sized ones); its seed where given; and where runs still
    share a label, each one's commit if theirs all differ, else its number."""
    mixed = {s.data for s in sections if len({t.device for t in sections if t.data == s.data}) > 1}
    parts = [([s.device] if s.data in mixed and s.device else []) + ([f"seed {s.seed}"] if s.seed else [])
             for s in sections]
    alike = defaultdict(list)  # (corpus, version, label parts) -> the sections that share them, in file order
    for i, s in enumerate(sections):
        alike[s.data, s.version, tuple(parts[i])].append(i)
    for runs in alike.values():
        if len(runs) == 1:
            continue
        commits = [sections[i].commit for i in runs]
        by_commit = None not in commits and len(set(commits)) == len(runs)
        for number, i in enumerate(runs, 1):
            parts[i].append(f"commit {sections[i].commit}" if by_commit else f"run {number}")
    return [s.version + (f" ({', '.join(p)})" if p else "") for s, p in zip(sections, parts)]


def styles(sections):
    """(colour, line style) for each section: one colour per version across all panels, and
    a new line style for each further run of that version in the same panel."""
    # "C0" to "C9" name the colours of matplotlib's default cycle, without importing it
    colours = {version: f"C{i % 10}" for i, version in enumerate(dict.fromkeys(s.version for s in sections))}
    drawn = Counter()  # (corpus, version) -> runs of that version already in that panel
    result = []
    for s in sections:
        result.append((colours[s.version], LINE_STYLES[drawn[s.data, s.version] % len(LINE_STYLES)]))
        drawn[s.data, s.version] += 1
    return result


def main(argv):
    options = dict(arg.split("=", 1) for arg in argv if "=" in arg)
    if len(options) != len(argv) or not set(options) <= {"--logs", "--out"}:
        sys.exit(USAGE)
    logs = Path(options.get("--logs", runlog.ROOT / "training_logs.md"))
    out = Path(options.get("--out", runlog.ROOT / "loss_curves.png"))
    # checked before matplotlib is imported, so that a bad --out costs no import and no drawing
    if out.is_dir():
        sys.exit(f"error: --out={out} is a directory; give a file name such as loss_curves.png")
    if not out.parent.is_dir():
        sys.exit(f"error: --out={out}: no directory {out.parent} to write into")
    try:
        sections = runlog.read_sections(logs.read_text(encoding="utf-8"))
    except OSError as error:
        sys.exit(f"error: cannot read {logs}: {error.strerror}")
    corpora = list(dict.fromkeys(s.data for s in sections))
    if not corpora:
        sys.exit(f"error: no runs found in {logs}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("error: this figure needs matplotlib: pip install matplotlib")
    figure, axes = plt.subplots(1, len(corpora), figsize=(6 * len(corpora), 4.5), squeeze=False, sharey=True)
    lines = list(zip(sections, labels(sections), styles(sections)))
    for ax, corpus in zip(axes[0], corpora):
        for section, label, (colour, style) in lines:
            if section.data == corpus and section.points:
                ax.plot(*zip(*section.points), label=label, color=colour, linestyle=style, linewidth=1.2)
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
