"""Write training_logs.md from the run records that tools/benchmark.py saved.

    python tools/training_logs.py [--out=training_logs.md] RECORD.json ...

The summary table has one row per record, with the commit that made it; the Speed
table one row per run of a SPEED_SCRIPTS version on the classic corpus, with the
median over each version's runs below it; then a section per run with its
command, device, versions, date, commit, note (where the record has one) and its
output verbatim. Nothing in the file is typed by hand.

Runs are labelled by version: a record's "version" where it has one (a run made
with an older file whose training code now lives under another name), else its
script's name. Every version must be one of SERIES.
"""

import json
import math
import statistics
import sys
from pathlib import Path

import runlog

SERIES = ["bigram.py", "v2.py", "v3.py", "v4.py", "v5.py", "v6.py", "v7.py", "v8.py", "v9.py"]
SPEED_SCRIPTS = ["v5.py", "v6.py", "v7.py", "v8.py", "v9.py"]
TARGETS = (1.50, 1.47)


def seed(record):
    return next((a.split("=", 1)[1] for a in record["args"] if a.startswith("--seed=")), None)


def order(record):
    data = runlog.data_label(record["args"])
    return (data != "input.txt", data, SERIES.index(runlog.version(record) + ".py"), int(seed(record) or 0))


def title(record):
    name = f"{runlog.version(record)} on {runlog.data_label(record['args'])}"
    return name + (f", seed {seed(record)}" if seed(record) else "")


def speed_section(records):
    runs = [r for r in records
            if runlog.version(r) + ".py" in SPEED_SCRIPTS and runlog.data_label(r["args"]) == runlog.CLASSIC]
    if not runs:
        return []
    rows = [runlog.speed(r, TARGETS) for r in runs]
    lines = ["## Speed", "", "Wall clock from process start to the step line that first shows the val loss at or"
             " under the target; tokens/s from the second step line to the last (evaluations included).", "",
             runlog.markdown_table(rows), ""]
    for version in (script.removesuffix(".py") for script in SPEED_SCRIPTS):
        mine = [row for row in rows if row["version"] == version]
        if len(mine) > 1:
            medians = []
            for column in [f"seconds to val ≤ {t:.2f}" for t in TARGETS] + ["best val loss"]:
                # a target never reached counts as reached infinitely late
                median = statistics.median(math.inf if row[column] is None else row[column] for row in mine)
                median = None if math.isinf(median) else median
                medians.append(f"{column} {runlog.cell(column, median)}")
            lines += [f"Median of the {len(mine)} {version} runs: " + "; ".join(medians) + ".", ""]
    lines += ["Commands:", ""] + [f"    {r['command']}" for r in runs] + [""]
    return lines


def run_section(record):
    note = [f"- note: {record['note']}"] if record.get("note") else []
    return [
        f"### {title(record)}", "",
        f"- command: `{record['command']}`",
        f"- device: {record['device']}; PyTorch {record['torch']}",
        f"- date: {record['date']}; commit {record['commit']}; wall time {record['wall_time']:.1f} s",
        *note, "",
        "```text", *(text for _, text in record["lines"]), "```", "",
    ]


def render(records):
    records = sorted(records, key=order)
    lines = ["# Training logs", "",
             "Written by `tools/training_logs.py` from the run records in `runs/`, which `tools/benchmark.py`"
             " saved while the runs printed; the output of each run is below, verbatim.", "",
             "## Summary", "", runlog.markdown_table([runlog.summary(r) for r in records]), ""]
    lines += speed_section(records)
    lines += ["## Runs", ""]
    for record in records:
        lines += run_section(record)
    return "\n".join(lines)


def main(argv):
    out = runlog.ROOT / "training_logs.md"
    paths = []
    for arg in argv:
        if arg.startswith("--out="):
            out = Path(arg.split("=", 1)[1])
        else:
            paths.append(Path(arg))
    if not paths:
        sys.exit("usage: python tools/training_logs.py [--out=training_logs.md] RECORD.json ...")
    try:
        records = [json.loads(path.read_text()) for path in paths]
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    failed = [r["command"] for r in records if r["returncode"] != 0]
    if failed:
        sys.exit(f"error: these runs failed: {failed}")
    unknown = [str(path) for path, r in zip(paths, records) if runlog.version(r) + ".py" not in SERIES]
    if unknown:
        sys.exit(f"error: these records' versions are not in the series {SERIES}: {unknown}")
    out.write_text(render(records))
    print(f"wrote {out}: {len(records)} runs")


if __name__ == "__main__":
    main(sys.argv[1:])
