"""Write training_logs.md (with --plot, loss_curves.png too) from the records tools/benchmark.py saves.

    python tools/training_logs.py [--out=training_logs.md] [--plot=loss_curves.png] RECORD.json|FOLDER ...

A folder stands for every record under it, its own before its subfolders': `python tools/training_logs.py runs
--plot=loss_curves.png` keeps every run, names/ too. The Summary (bits per character beside the loss: from v10 on
the loss is per BPE token, not per character) and the Speed table (v5-v9, whose loss is per character, on the
classic corpus), then each run, its output verbatim; names/ and tools after the series. A record's "version"
replaces its script's name, its "data" the name of its text, and its "label" (an experiment's) joins its name. The
plot shows one run per file: those on input.txt without a label, CPU and GPU apart. Only --plot needs matplotlib
(optional); it is refused, before any work, without it."""

import argparse
import io
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERIES = ["bigram", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13"]  # in reading order
SPEED = SERIES[SERIES.index("v5"):SERIES.index("v10")]  # the Speed table's targets are in nats per character
TARGETS = {f"seconds to val ≤ {target:.2f}": target for target in (1.50, 1.47)}  # Speed columns
CLASSIC, LECTURE = "tinyshakespeare (classic)", "the lecture's names.txt"
DATA = {"input.txt", "names/names.txt", "output.txt"}  # the project's own text, tracked by git or not
STEP_LINE = re.compile(r"^step (\d+): train loss (\d+\.\d+), val loss (\d+\.\d+)(?: \((\d+\.\d+) bits/char\))?")
LOSS_LINE = re.compile(r"^(train|val) loss (\d+\.\d+)$")  # names/: a whole split's loss after training
PARAMETERS_LINE = re.compile(r"^([\d,]+) parameters, training on (\S+)")
INF = float("inf")  # the seconds to a target never reached: it is reached last in a median


def git(*a):  # --no-optional-locks: git status writes nothing back to the index
    return subprocess.run(["git", "--no-optional-locks", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def project_file(path):
    """Whether path names a file of the project, which no tool's output replaces: tracked by git, a .py, the data."""
    if ROOT not in (path := Path(path).resolve()).parents:
        return False
    name = path.relative_to(ROOT).as_posix()
    return name.endswith(".py") or name in DATA or name in git("ls-files").splitlines()


def refusal(path, own=None):
    """Why a tool may not write path, or None. The tools write as the scripts do, only new files: never one that
    exists, but for `own`, the tool's own documented output, which it writes anew."""
    folder = path.absolute().parent
    return ("is a folder" if path.is_dir() else "is in no folder that exists" if not folder.is_dir() else
            "is in a read-only folder" if not os.access(folder, os.W_OK) else
            "exists, and a tool writes only new files" if os.path.lexists(path) and path.resolve() != own else None)


def write(path, data):
    """Write bytes to a temporary file beside path, then rename it over path: path is never half written."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)  # mkstemp's 0o600 would hide the file from the other users
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def steps(record):  # (seconds, step, train loss, val loss) for each step line
    return [(t, int(m[1]), float(m[2]), float(m[3])) for t, text in record["lines"] if (m := STEP_LINE.match(text))]


def bits_per_char(record):
    """(seconds, step, val bits per character) for each step line: the line's own figure where it ends with one
    (v8 on; v10 on convert their loss per token to characters), else the loss per character in nats / ln 2."""
    return [(t, int(m[1]), float(m[4]) if m[4] else float(m[3]) / math.log(2))
            for t, text in record["lines"] if (m := STEP_LINE.match(text))]


def losses(record):
    """(final train loss, final val loss, final val bits/char, best val loss), else None for a run with no loss.
    names/ prints each whole split's loss after training: its only figure on the whole val split, the step lines
    estimating from batches. The series has step lines only: the last is final, the lowest best."""
    own = {m[1]: float(m[2]) for _, text in record["lines"] if (m := LOSS_LINE.match(text))}
    if "val" in own:
        return own.get("train"), own["val"], own["val"] / math.log(2), own["val"]  # names/ predicts characters
    if points := steps(record):
        return points[-1][2], points[-1][3], bits_per_char(record)[-1][2], min(p[3] for p in points)
    return None


def arg(record, name):
    """The value of the run's last --name=value (or --name value), else None."""
    words = [w for a in record["args"] for w in (a.split("=", 1) if a.startswith("--") else [a])]
    return next((value for key, value in reversed(list(zip(words, words[1:]))) if key == f"--{name}"), None)


def data(record):  # the record's own name for its text, the project's (names/ has its own), a corpus by name, the path
    if record.get("data"):
        return record["data"]
    script, path = record["script"], arg(record, "data_path")
    own = ("names/names.txt" if script.startswith("names/") else
           "two moons, drawn by the script" if script.startswith("micrograd/") else "input.txt")
    return own if path is None else {"tinyshakespeare.txt": CLASSIC, "names.txt": LECTURE}.get(Path(path).name, path)


def version(record):
    return record.get("version") or record["script"].removesuffix(".py")


def summary(record):
    (train, val, val_bits, best), points = losses(record), steps(record)
    count = next((int(m[1].replace(",", "")) for _, t in record["lines"] if (m := PARAMETERS_LINE.match(t))), None)
    label = f" ({record['label']})" if record.get("label") else ""
    return {"version": version(record) + label, "data": data(record), "device": record["device"], "parameters": count,
            "steps": points[-1][1] if points else None, "final train loss": train, "final val loss": val,
            "final val bits/char": val_bits, "best val loss": best,
            "wall time (s)": record["wall_time"], "commit": record["commit"]}


def speed(record):  # tokens/s from the second step line on: start-up and compilation left out
    points, tokens = steps(record), record.get("tokens_per_step")
    best_time, _, _, best = min(points, key=lambda p: (p[3], p[0]))
    (t0, s0, *_), (t1, s1, *_) = points[min(1, len(points) - 1)], points[-1]
    return {"version": version(record), "data": data(record), "device": record["device"],
            **{c: next((p[0] for p in points if p[3] <= target), INF) for c, target in TARGETS.items()},
            "best val loss": best, "seconds to best": best_time,
            "tokens/s": round((s1 - s0) * tokens / (t1 - t0)) if tokens and t1 > t0 else None}


def cell(column, value):  # losses to four decimals, bits to three, seconds to one, counts with thousands separators
    if value is None or value == INF:
        return "not reached" if column.startswith("seconds to") else "n/a"
    return (f"{value:.4f}" if "loss" in column else f"{value:.3f}" if "bits" in column
            else f"{value:.1f}" if "seconds" in column or "(s)" in column
            else f"{value:,}" if isinstance(value, int) else str(value))


def table(rows):
    return "\n".join(["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])] +
                     ["| " + " | ".join(cell(c, v) for c, v in row.items()) + " |" for row in rows])


def order(record):
    return data(record) != "input.txt", data(record), SERIES.index(version(record)), int(arg(record, "seed") or 0)


def speed_section(records):
    if not (runs := [r for r in records if version(r) in SPEED and data(r) == CLASSIC]):
        return []
    rows = [speed(r) for r in runs]
    lines = ["## Speed", "", "Wall clock from process start to the step line that first shows the val loss at or"
             " under the target; tokens/s from the second step line to the last (evaluations included).", "",
             table(rows), ""]
    for name in SPEED:
        if len(mine := [row for row in rows if row["version"] == name]) > 1:
            medians = [f"{c} {cell(c, statistics.median(row[c] for row in mine))}" for c in [*TARGETS, "best val loss"]]
            lines += [f"Median of the {len(mine)} {name} runs: " + "; ".join(medians) + ".", ""]
    return lines + ["Commands:", ""] + [f"    {r['command']}" for r in runs] + [""]


def run_section(record):
    seed, label = arg(record, "seed"), f" ({record['label']})" if record.get("label") else ""
    return [f"### {version(record)}{label} on {data(record)}" + (f", seed {seed}" if seed else ""), "",
            f"- command: `{record['command']}`", f"- device: {record['device']}; PyTorch {record['torch']}",
            f"- date: {record['date']}; commit {record['commit']}; wall time {record['wall_time']:.1f} s",
            f"- script: {record['script']}, git blob {record['blob'] or 'unknown'}",
            *([f"- note: {record['note']}"] if record.get("note") else []), "",
            "```text", *(text for _, text in record["lines"]), "```", ""]


def render(records):  # the series' runs in the tables; the rest (names/, tools) after them, those with a loss in one
    other = [r for r in records if version(r) not in SERIES]
    series, scored = sorted([r for r in records if r not in other], key=order), [r for r in other if losses(r)]
    lines = ["# Training logs", "", "Written by `tools/training_logs.py` from the run records in `runs/`, which"
             " `tools/benchmark.py` saved while the runs printed; the output of each run is below, verbatim.", ""]
    if series:
        lines += ["## Summary", "", table([summary(r) for r in series]), "", *speed_section(series), "## Runs", "",
                  *sum(map(run_section, series), [])]
    if other:
        lines += ["## Other runs: names/ and benchmarks", "", *[table([summary(r) for r in scored]), ""] * bool(scored),
                  *sum(map(run_section, other), [])]
    return "\n".join(lines)


COLOURS = [f"C{i}" for i in range(10)] + ["black", "darkgoldenrod", "teal", "crimson"]  # one for each version


def draw(records, Figure):
    """Val bits per character by step (above) and by wall-clock second (below): a column per device, CPU and GPU
    apart, a colour per version, a line style per run of it. Bits per character, not the loss: from v10 on the loss
    is per BPE token."""
    records = sorted(records, key=order)
    devices = list(dict.fromkeys(run["device"] for run in records))
    figure = Figure(figsize=(6 * len(devices), 9), layout="tight")
    axes = figure.subplots(2, len(devices), squeeze=False, sharey=True)
    for column, device in zip(axes.T, devices):
        runs = [r for r in records if r["device"] == device]
        for i, run in enumerate(runs):
            n = sum(version(r) == version(run) for r in runs[:i])  # earlier runs of this version in the panel
            seconds, step, val_bits = zip(*bits_per_char(run))
            label = (version(run) + (f", seed {arg(run, 'seed')}" if arg(run, "seed") else "")
                     + (f", {run['label']}" if run.get("label") else ""))
            style = {"color": COLOURS[SERIES.index(version(run)) % len(COLOURS)], "linewidth": 1.2,
                     "linestyle": ["-", "--", ":", "-."][n % 4], "label": label}
            column[0].plot(step, val_bits, **style)
            column[1].plot(seconds, val_bits, **style)
        title = f"{'a CPU' if device == 'cpu' else device}: {', '.join(dict.fromkeys(map(data, runs)))}"
        column[0].set(title=title, xlabel="step")
        column[1].set(title=title, xlabel="wall-clock seconds (log scale)", xscale="log")
        column[1].xaxis.set_major_formatter("{x:g}")  # 10, 100, not 10^1, 10^2
        column[0].legend(fontsize=7)
    ticks = [2, 2.2, 2.5, 3, 3.5, 4, 5, 6]  # a log scale: late, small gains stay visible
    for ax in axes.flat:
        ax.set(ylabel="val bits per character", yscale="log", yticks=ticks, yticklabels=map(str, ticks))
        ax.minorticks_off()
        ax.grid(True, alpha=0.3)
    return figure


def front(records):
    """The runs the README's figure shows: one per file, at its defaults or its CPU-sized command, on input.txt;
    experiments (a label, another text) stay in training_logs.md."""
    return [r for r in records if version(r) in SERIES and data(r) == "input.txt" and not r.get("label")]


def record_paths(paths):  # a folder stands for every record under it, its own before its subfolders'
    return [found for path in paths
            for found in (sorted(path.rglob("*.json"), key=lambda p: (len(p.parts), p)) if path.is_dir() else [path])]


def main(argv):
    parser = argparse.ArgumentParser(prog="python tools/training_logs.py", usage=__doc__.split("\n\n")[1].strip())
    parser.add_argument("records", nargs="+", type=Path, metavar="RECORD.json|FOLDER")
    parser.add_argument("--out", type=Path, default=ROOT / "training_logs.md")
    parser.add_argument("--plot", type=Path, help="also draw val bits per character into this image (matplotlib)")
    options = parser.parse_args(argv)
    for option, out, own in [("--out", options.out, "training_logs.md"), ("--plot", options.plot, "loss_curves.png")]:
        if out and (why := refusal(out, own=ROOT / own)):  # own: the one file it replaces, its own output
            parser.error(f"{option}={out} {why}")
    if options.plot:  # before any work: a plot that cannot be drawn is refused now, not found missing at the end
        try:
            from matplotlib.figure import Figure
        except ImportError:
            sys.exit("error: --plot needs matplotlib (pip install matplotlib)")
        if (image_format := options.plot.suffix[1:].lower()) not in Figure().canvas.get_supported_filetypes():
            parser.error(f"--plot={options.plot}: not an image format matplotlib writes (.png, .svg, .pdf...)")
    if not (paths := record_paths(options.records)):
        parser.error(f"no records (*.json) in {' '.join(map(str, options.records))}")
    records = []
    try:
        for path in paths:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record["returncode"] != 0 or version(record) in SERIES and not steps(record):
                raise ValueError(f"a failed run, or one of {SERIES[0]}-{SERIES[-1]} without step lines")
            records.append((not losses(record) or summary(record)) and run_section(record)  # all fields there
                           and (version(record) not in SERIES or speed(record)) and record)
        text, shown, image = render(records), front(records), io.BytesIO()
        if options.plot:
            if not shown:
                raise ValueError(f"--plot: no run of {SERIES[0]}-{SERIES[-1]} on input.txt without a label to draw")
            draw(shown, Figure).savefig(image, format=image_format, dpi=120)
        write(options.out, text.encode("utf-8"))
        print(f"wrote {options.out}: {len(records)} runs")
        if options.plot:
            write(options.plot, image.getvalue())
            print(f"wrote {options.plot}")
    except (OSError, ValueError, LookupError, TypeError, AttributeError, RecursionError) as error:
        sys.exit("error: " + f"{path}: " * (len(records) < len(paths)) + f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:  # Ctrl-C: no traceback, the shell's status for it
        sys.exit(130)
