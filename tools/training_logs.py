"""Write training_logs.md (with --plot, loss_curves.png too) from the records tools/benchmark.py saves.

    python tools/training_logs.py [--out=training_logs.md] [--plot=loss_curves.png] RECORD.json ...

The Summary and Speed tables (v5-v9 on the classic corpus), then each run, its output verbatim; names/ and tools
after the series. A record's "version" replaces its script's name. Only the plot needs matplotlib (optional)."""

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERIES = ["bigram", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10"]  # the Speed table: v5 to v9
TARGETS = {f"seconds to val ≤ {target:.2f}": target for target in (1.50, 1.47)}  # Speed columns
CLASSIC, LECTURE = "tinyshakespeare (classic)", "the lecture's names.txt"
STEP_LINE = re.compile(r"^step (\d+): train loss (\d+\.\d+), val loss (\d+\.\d+)")  # a suffix may follow
PARAMETERS_LINE = re.compile(r"^([\d,]+) parameters, training on (\S+)")
INF = float("inf")  # the seconds to a target never reached: it is reached last in a median


def steps(record):  # (seconds, step, train loss, val loss) for each step line
    return [(t, int(m[1]), float(m[2]), float(m[3])) for t, text in record["lines"] if (m := STEP_LINE.match(text))]


def arg(record, name):
    """The value of the run's last --name=value (or --name value), else None."""
    words = [w for a in record["args"] for w in (a.split("=", 1) if a.startswith("--") else [a])]
    return next((value for key, value in reversed(list(zip(words, words[1:]))) if key == f"--{name}"), None)


def data(record):  # the project's own text (names/ has its own), a reference corpus by name, else the path given
    own, path = "names/names.txt" if record["script"].startswith("names/") else "input.txt", arg(record, "data_path")
    return own if path is None else {"tinyshakespeare.txt": CLASSIC, "names.txt": LECTURE}.get(Path(path).name, path)


def version(record):
    return record.get("version") or record["script"].removesuffix(".py")


def summary(record):
    (*_, last, train, val), best = steps(record)[-1], min(v for *_, v in steps(record))
    count = next((int(m[1].replace(",", "")) for _, t in record["lines"] if (m := PARAMETERS_LINE.match(t))), None)
    return {"version": version(record), "data": data(record), "device": record["device"], "parameters": count,
            "steps": last, "final train loss": train, "final val loss": val, "best val loss": best,
            "wall time (s)": record["wall_time"], "commit": record["commit"]}


def speed(record):  # tokens/s from the second step line on: start-up and compilation left out
    points, tokens = steps(record), record.get("tokens_per_step")
    best_time, _, _, best = min(points, key=lambda p: (p[3], p[0]))
    (t0, s0, *_), (t1, s1, *_) = points[min(1, len(points) - 1)], points[-1]
    return {"version": version(record), "data": data(record), "device": record["device"],
            **{c: next((p[0] for p in points if p[3] <= target), INF) for c, target in TARGETS.items()},
            "best val loss": best, "seconds to best": best_time,
            "tokens/s": round((s1 - s0) * tokens / (t1 - t0)) if tokens and t1 > t0 else None}


def cell(column, value):  # losses to four decimals, seconds to one, counts with thousands separators
    if value is None or value == INF:
        return "not reached" if column.startswith("seconds to") else "n/a"
    return (f"{value:.4f}" if "loss" in column else f"{value:.1f}" if "seconds" in column or "(s)" in column
            else f"{value:,}" if isinstance(value, int) else str(value))


def table(rows):
    return "\n".join(["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])] +
                     ["| " + " | ".join(cell(c, v) for c, v in row.items()) + " |" for row in rows])


def order(record):
    return data(record) != "input.txt", data(record), SERIES.index(version(record)), int(arg(record, "seed") or 0)


def speed_section(records):
    if not (runs := [r for r in records if version(r) in SERIES[4:9] and data(r) == CLASSIC]):
        return []
    rows = [speed(r) for r in runs]
    lines = ["## Speed", "", "Wall clock from process start to the step line that first shows the val loss at or"
             " under the target; tokens/s from the second step line to the last (evaluations included).", "",
             table(rows), ""]
    for name in SERIES[4:9]:
        if len(mine := [row for row in rows if row["version"] == name]) > 1:
            medians = [f"{c} {cell(c, statistics.median(row[c] for row in mine))}" for c in [*TARGETS, "best val loss"]]
            lines += [f"Median of the {len(mine)} {name} runs: " + "; ".join(medians) + ".", ""]
    return lines + ["Commands:", ""] + [f"    {r['command']}" for r in runs] + [""]


def run_section(record):
    seed = arg(record, "seed")
    return [f"### {version(record)} on {data(record)}" + (f", seed {seed}" if seed else ""), "",
            f"- command: `{record['command']}`", f"- device: {record['device']}; PyTorch {record['torch']}",
            f"- date: {record['date']}; commit {record['commit']}; wall time {record['wall_time']:.1f} s",
            f"- script: {record['script']}, git blob {record['blob'] or 'unknown'}",
            *([f"- note: {record['note']}"] if record.get("note") else []), "",
            "```text", *(text for _, text in record["lines"]), "```", ""]


def render(records):  # the series' training runs in the tables; the rest (names/, tools) after them
    other = [r for r in records if version(r) not in SERIES]
    records = sorted([r for r in records if r not in other], key=order)
    return "\n".join(["# Training logs", "", "Written by `tools/training_logs.py` from the run records in `runs/`,"
                      " which `tools/benchmark.py` saved while the runs printed; the output of each run is below,"
                      " verbatim.", "", "## Summary", "", table([summary(r) for r in records]), "",
                      *speed_section(records), "## Runs", "", *sum(map(run_section, records), []),
                      *["## Other runs: names/ and benchmarks", ""] * bool(other), *sum(map(run_section, other), [])])


def plot(records, out):  # val loss by step: a panel per corpus, a colour per version, a line style per run of it
    try:
        from matplotlib.figure import Figure
    except ImportError:
        sys.exit(f"note: {out} not drawn: the plot needs matplotlib (pip install matplotlib)")
    corpora = list(dict.fromkeys(map(data, records := sorted(records, key=order))))
    figure = Figure(figsize=(6 * len(corpora), 4.5), layout="tight")
    for ax, corpus in zip(figure.subplots(1, len(corpora), squeeze=False, sharey=True)[0], corpora):
        for i, run in enumerate(runs := [r for r in records if data(r) == corpus]):
            n = sum(version(r) == version(run) for r in runs[:i])  # earlier runs of this version in the panel
            ax.plot([p[1] for p in steps(run)], [p[3] for p in steps(run)], color=f"C{SERIES.index(version(run))}",
                    linestyle=["-", "--", ":", "-."][n % 4], linewidth=1.2, label=f"{version(run)} ({run['device']}"
                    + (f", seed {arg(run, 'seed')})" if arg(run, "seed") else ")"))
        ticks = [1.4, 1.5, 1.6, 1.8, 2, 2.5, 3, 4]  # a log scale: late, small gains stay visible
        ax.set(title=corpus, xlabel="step", ylabel="val loss", yscale="log", yticks=ticks, yticklabels=map(str, ticks))
        ax.minorticks_off()
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    figure.savefig(out, dpi=120)
    print(f"wrote {out}")


def main(argv):
    parser = argparse.ArgumentParser(prog="python tools/training_logs.py", usage=__doc__.split("\n\n")[1].strip())
    parser.add_argument("records", nargs="+", type=Path, metavar="RECORD.json")
    parser.add_argument("--out", type=Path, default=ROOT / "training_logs.md")
    parser.add_argument("--plot", type=Path, help="also draw the val loss curves into this PNG (needs matplotlib)")
    options, records = parser.parse_args(argv), []
    try:
        for path in options.records:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record["returncode"] != 0 or version(record) in SERIES and not steps(record):
                raise ValueError(f"a failed run, or one of {SERIES} without step lines")
            records.append((version(record) not in SERIES or summary(record) and speed(record)) and run_section(record)
                           and record)  # all fields there
        options.out.write_text(render(records), encoding="utf-8")
        print(f"wrote {options.out}: {len(records)} runs")
        if options.plot:
            plot([r for r in records if version(r) in SERIES], options.plot)
    except (OSError, ValueError, LookupError, TypeError, AttributeError) as error:
        sys.exit("error: " + f"{path}: " * (len(records) < len(options.records)) + f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    main(sys.argv[1:])
