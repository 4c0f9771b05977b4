"""Run a training script, timestamp its output, and print its row of the Speed table.

    python tools/benchmark.py [--record=run.json] [--commit=SHA] SCRIPT [--name=value ...]

SCRIPT runs as a subprocess from the repository root with the --name=value
arguments that follow it. Times are wall-clock seconds from the process start to
the step line that first shows the val loss at or under each target. tokens/s is
batch_size * block_size * steps over the time from the second step line to the
last, so start-up and compilation are left out and evaluations are counted in.
--record saves the whole run (command, device, versions, timestamped output) for
tools/training_logs.py; --commit names the commit where the checkout has no git.
"""

import json
import sys
from pathlib import Path

import runlog

USAGE = "usage: python tools/benchmark.py [--record=run.json] [--commit=SHA] SCRIPT [--name=value ...]"


def main(argv):
    options = {}
    while argv and argv[0].startswith("--"):
        name, _, value = argv.pop(0).partition("=")
        if name not in ("--record", "--commit") or not value:
            sys.exit(USAGE)
        options[name] = value
    if not argv or not (runlog.ROOT / argv[0]).is_file():
        sys.exit(USAGE)
    script, args = argv[0], argv[1:]
    record = runlog.run(script, args, commit=options.get("--commit"))
    if "--record" in options:
        Path(options["--record"]).write_text(json.dumps(record, indent=1) + "\n")
    if record["returncode"] != 0:
        sys.exit(f"error: {script} exited with status {record['returncode']}")
    print()
    print(runlog.markdown_table([runlog.speed(record)]))


if __name__ == "__main__":
    main(sys.argv[1:])
