"""Run a training script, timestamp its output, and print its row of the Speed table.

    python tools/benchmark.py [--record=run.json [--force]] [--commit=SHA] SCRIPT [--name=value ...]

SCRIPT runs as a subprocess from the repository root with the --name=value
arguments that follow it. Times are wall-clock seconds from the process start to
the step line that first shows the val loss at or under each target. tokens/s is
batch_size * block_size * steps over the time from the second step line to the
last, so start-up and compilation are left out and evaluations are counted in.
--record saves the whole run (command, device, versions, timestamped output) for
tools/training_logs.py, and only if the run succeeded; it will not replace an
existing file unless --force is given, and that is checked before the run starts,
so that a long run is not lost to a name already taken. --commit names the commit
where the checkout has no git.
"""

import json
import sys
from pathlib import Path

import runlog

USAGE = ("usage: python tools/benchmark.py [--record=run.json [--force]] [--commit=SHA]"
         " SCRIPT [--name=value ...]")


def main(argv):
    options = {}
    while argv and argv[0].startswith("--"):
        arg = argv.pop(0)
        name, _, value = arg.partition("=")
        if arg == "--force":
            options[arg] = True
        elif name in ("--record", "--commit") and value:
            options[name] = value
        else:
            sys.exit(USAGE)
    if not argv:
        sys.exit(USAGE)
    script, args = argv[0], argv[1:]
    if not (runlog.ROOT / script).is_file():
        sys.exit(f"error: no script {runlog.ROOT / script}")
    record_path = Path(options["--record"]) if "--record" in options else None
    if record_path:
        if record_path.is_dir():
            sys.exit(f"error: --record={record_path} is a directory; give a file name")
        if not record_path.parent.is_dir():
            sys.exit(f"error: --record={record_path}: no directory {record_path.parent} to write into")
        if record_path.exists() and "--force" not in options:
            sys.exit(f"error: --record={record_path} exists; add --force to replace it")
    record = runlog.run(script, args, commit=options.get("--commit"))
    if record["returncode"] != 0:
        sys.exit(f"error: {script} exited with status {record['returncode']}; no record written")
    if not runlog.steps(record["lines"]):
        sys.exit(f"error: {script} printed no step lines; no record written")
    if record_path:
        record_path.write_text(json.dumps(record, indent=1) + "\n")
    print()
    print(runlog.markdown_table([runlog.speed(record)]))


if __name__ == "__main__":
    main(sys.argv[1:])
