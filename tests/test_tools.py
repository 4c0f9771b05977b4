"""The tools: benchmark.py records a run, training_logs.py turns records into tables, sections and a plot,
build_input.py cleans the plays. Fast and hermetic: tiny scripts and files in tmp_path, any cwd."""

import hashlib
import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.dont_write_bytecode = True  # importing the tools leaves no __pycache__ in the repository
TOOLS = Path(__file__).resolve().parent.parent / "tools"


def load(name):
    """tools/name.py as a module, registered under its name (benchmark.py imports training_logs)."""
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


training_logs, benchmark, build_input = load("training_logs"), load("benchmark"), load("build_input")
CLASSIC_PATH = "--data_path=../shared/data/tinyshakespeare.txt"
LINES = [[1.0, "10,788,929 parameters, training on cuda"],
         [5.0, "step 0: train loss 4.2000, val loss 4.2100"],
         [15.0, "step 100: train loss 1.6000, val loss 1.5200 | 100.0 ms/step, 10 s left"],
         [20.0, "step 200: train loss 1.4000, val loss 1.4900 (2.150 bits/char)"],
         [25.0, "step 300: train loss 1.3000, val loss 1.4600 (2.106 bits/char) | 24.0 s"],
         [26.0, "the sample"]]


def record(script="v7.py", args=(), lines=LINES, **keys):
    """A record as benchmark.py writes it, with optional keys such as version and note."""
    return {"script": script, "args": list(args), "command": " ".join(["python", script, *args]), "returncode": 0,
            "device": "NVIDIA H100 80GB HBM3", "torch": "2.x", "date": "2026-01-01 00:00 UTC", "commit": "abc1234",
            "blob": "f" * 40, "tokens_per_step": 64 * 256, "wall_time": 30.0, "lines": lines, **keys}


def fake_script(tmp_path):
    """A training script in tmp_path: batch 4 x block 8 unless --name=value says otherwise, two step
    lines, exit status --status; it leaves a file named ran beside itself when it runs."""
    script = tmp_path / "fake.py"
    script.write_text("import sys\nfrom pathlib import Path\nbatch_size, block_size, status = 4, 8, 0\n\n"
                      "def parse_args(argv):\n    for a in argv:\n"
                      "        name, _, value = a.removeprefix('--').partition('=')\n"
                      "        globals()[name] = int(value)\n\n"
                      "if __name__ == '__main__':\n    parse_args(sys.argv[1:])\n"
                      "    Path(__file__).with_name('ran').touch()\n"
                      "    print('1,234 parameters, training on cpu')\n"
                      "    print('step 0: train loss 4.0000, val loss 4.1000')\n"
                      "    print('step 2: train loss 1.5000, val loss 1.4900 (2.150 bits/char) | 0.1 s')\n"
                      "    sys.exit(status)\n")
    return script


def short_exit(function, argv, capsys):
    """The message a tool's main exits with (its own, or argparse's on stderr), checked to be short."""
    with pytest.raises(SystemExit) as exit_info:
        function(argv)
    message = exit_info.value.code if isinstance(exit_info.value.code, str) else capsys.readouterr().err.strip()
    assert exit_info.value.code != 0 and 1 <= len(message.splitlines()) <= 3
    return message


def test_benchmark_record_has_command_blob_device_torch_sizes_and_timestamped_lines(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the command names the thread count it ran with
    script, saved = fake_script(tmp_path), tmp_path / "run.json"
    benchmark.main([f"--record={saved}", str(script), "--batch_size=2"])
    run = json.loads(saved.read_text())
    assert (run["script"], run["args"]) == ("fake.py", ["--batch_size=2"])
    assert run["command"] == "OMP_NUM_THREADS=1 python fake.py --batch_size=2"
    source = script.read_bytes()
    assert run["blob"] == hashlib.sha1(b"blob %d\0" % len(source) + source).hexdigest()
    assert (run["returncode"], run["device"], run["tokens_per_step"]) == (0, "cpu", 2 * 8)
    assert run["torch"] == importlib.metadata.version("torch") and run["date"].endswith(" UTC") and run["commit"]
    assert [text for _, text in run["lines"]] == ["1,234 parameters, training on cpu",
                                                  "step 0: train loss 4.0000, val loss 4.1000",
                                                  "step 2: train loss 1.5000, val loss 1.4900 (2.150 bits/char) | 0.1 s"]
    assert [t for t, _ in run["lines"]] == sorted(t for t, _ in run["lines"]) and run["wall_time"] > 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("| fake | input.txt | cpu | ")  # its Speed row


def test_benchmark_writes_no_record_of_a_failed_run(tmp_path, capsys):
    saved = tmp_path / "run.json"
    message = short_exit(benchmark.main, [f"--record={saved}", str(fake_script(tmp_path)), "--status=3"], capsys)
    assert "status 3" in message and (tmp_path / "ran").exists() and not saved.exists()


def test_benchmark_does_not_replace_a_record_without_force_nor_start_the_run(tmp_path, capsys):
    saved = tmp_path / "run.json"
    saved.write_text("an earlier run")
    message = short_exit(benchmark.main, [f"--record={saved}", str(fake_script(tmp_path))], capsys)
    assert "--force" in message and saved.read_text() == "an earlier run" and not (tmp_path / "ran").exists()


def test_benchmark_replaces_a_record_with_force(tmp_path):
    saved = tmp_path / "run.json"
    saved.write_text("an earlier run")
    benchmark.main(["--force", f"--record={saved}", str(fake_script(tmp_path))])
    assert json.loads(saved.read_text())["script"] == "fake.py"


def test_summary_row_has_the_final_and_best_losses_and_the_commit():
    assert training_logs.summary(record("v5.py")) == {
        "version": "v5", "data": "input.txt", "device": "NVIDIA H100 80GB HBM3", "parameters": 10_788_929,
        "steps": 300, "final train loss": 1.3, "final val loss": 1.46, "best val loss": 1.46,
        "wall time (s)": 30.0, "commit": "abc1234"}


def test_speed_row_gives_the_seconds_to_each_target_and_the_tokens_per_second():
    row = training_logs.speed(record(args=[CLASSIC_PATH]))
    assert row["data"] == training_logs.CLASSIC
    assert (row["seconds to val ≤ 1.50"], row["seconds to val ≤ 1.47"]) == (20.0, 25.0)
    assert (row["best val loss"], row["seconds to best"]) == (1.46, 25.0)
    assert row["tokens/s"] == 200 * 64 * 256 // 10  # 200 steps from the second step line to the last, in 10 s


def test_speed_row_says_not_reached_for_a_target_the_run_never_reached():
    row = training_logs.speed(record(lines=LINES[:3]))
    assert training_logs.table([row]).splitlines()[2].count("| not reached") == 2


def test_training_logs_from_two_records_has_both_tables_and_a_section_per_run(tmp_path):
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    paths[0].write_text(json.dumps(record("v6.py", [CLASSIC_PATH, "--seed", "2"], version="v7", note="an older file")))
    paths[1].write_text(json.dumps(record("v5.py", [], blob=None)))
    out = tmp_path / "training_logs.md"
    training_logs.main([f"--out={out}", *map(str, paths)])
    text = out.read_text()
    summary, speed = text[text.index("## Summary"):text.index("## Speed")], text[text.index("## Speed"):]
    assert summary.index("| v5 | input.txt |") < summary.index("| v7 | tinyshakespeare (classic) |")
    assert "| v7 | tinyshakespeare (classic) | NVIDIA H100 80GB HBM3 | 20.0 | 25.0 | 1.4600 | 25.0 | 327,680 |" in speed
    assert "| v5 |" not in speed[:speed.index("## Runs")]  # v5 ran on input.txt: not in the Speed table
    assert text.count("\n### ") == 2 and "### v7 on tinyshakespeare (classic), seed 2" in text
    assert "- note: an older file" in text and "- script: v5.py, git blob unknown" in text
    assert "\nstep 300: train loss 1.3000, val loss 1.4600 (2.106 bits/char) | 24.0 s\n" in text


def test_plot_without_matplotlib_is_a_one_line_note_after_the_markdown(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # any import of it now fails
    (path := tmp_path / "run.json").write_text(json.dumps(record()))
    out, png = tmp_path / "logs.md", tmp_path / "curves.png"
    message = short_exit(training_logs.main, [f"--out={out}", f"--plot={png}", str(path)], capsys)
    assert message.startswith("note: ") and "matplotlib" in message and "\n" not in message
    assert out.exists() and not png.exists()


@pytest.mark.parametrize("tool, args", [
    ("benchmark", []), ("benchmark", ["no_such_script.py"]), ("benchmark", ["--records=x.json", "v7.py"]),
    ("training_logs", []), ("training_logs", ["no_such_record.json"]), ("training_logs", ["{tmp}/not.json"]),
    ("build_input", ["--sdist"]), ("build_input", ["--sdist={tmp}/not.json"])])
def test_bad_arguments_give_a_short_error_without_a_traceback(tmp_path, tool, args):
    (tmp_path / "not.json").write_text("not JSON, nor an sdist")
    args = [a.format(tmp=tmp_path) for a in args] + [f"--out={tmp_path / 'out'}"] * (tool != "benchmark")
    result = subprocess.run([sys.executable, "-B", str(TOOLS / f"{tool}.py"), *args], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert 1 <= len(result.stderr.splitlines()) <= 3 and not (tmp_path / "out").exists()


def test_data_label_reads_data_path_given_either_way():
    assert training_logs.data(record(args=["--data_path", "x/tinyshakespeare.txt"])) == training_logs.CLASSIC
    assert training_logs.data(record(args=["--data_path=a.txt", "--data_path=b.txt"])) == "b.txt"  # the last counts


def test_speeches_drop_front_matter_headings_and_stage_directions():
    play = ("TITLE\n\nKING, of somewhere\n\nACT I.\n\nSCENE I. A hall.\n\n[Enter KING.]\n\nKING.\n"
            "What news?  [Aside.] He looks\npale.\n\n[Exit KING; and then\na long direction.]\n\nNone at all.\n\n"
            "Lady Capulet.\n[Kneels.]\nCome.\n\nSaddle my horse.\n\n[Enter a MESSENGER\n\nMESSENGER.\nSir.\n"
            "{To KING] Now.\n\nACT II.\n\nthe end of a direction\nthat lost its opening bracket.]\n\n1 KEEPER.\nGo.\n")
    assert build_input.speeches(play) == [("KING", ["What news? He looks", "pale.", "None at all."]),
                                          ("Lady Capulet", ["Come.", "Saddle my horse."]),
                                          ("MESSENGER", ["Sir.", "Now."]), ("1 KEEPER", ["Go."])]
    assert build_input.format_corpus([play]).startswith("KING:\nWhat news? He looks\npale.\nNone at all.\n\nLady")


def test_tokens_per_step_is_batch_times_block_as_the_scripts_parse_args_sets_them(tmp_path):
    assert benchmark.tokens_per_step("bigram.py", ["--batch_size=3", "--block_size=5", "--device=cpu"]) == 15
    assert benchmark.tokens_per_step("bigram.py", ["--batch_size=many"]) is None  # it refuses the args: unknown


def test_v10_runs_are_summarised_but_left_out_of_the_speed_table():
    text = training_logs.render([record("v7.py", [CLASSIC_PATH]), record("v10.py", [CLASSIC_PATH])])
    assert "| v10 | tinyshakespeare (classic) |" in text[:text.index("## Speed")]
    assert "| v10 |" not in text[text.index("## Speed"):text.index("## Runs")]


def test_a_run_without_step_lines_goes_after_the_series_and_out_of_its_tables(tmp_path):
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    paths[0].write_text(json.dumps(record("v5.py", [])))
    paths[1].write_text(json.dumps(record("names/mlp.py", [], lines=[[9.0, "val loss 2.1500"]])))
    out = tmp_path / "training_logs.md"
    training_logs.main([f"--out={out}", *map(str, paths)])
    text = out.read_text()
    assert "names/mlp" not in text[:text.index("## Other runs: names/ and benchmarks")]
    assert "### names/mlp on names/names.txt" in text and "\nval loss 2.1500\n" in text


def test_a_series_run_without_step_lines_is_refused(tmp_path, capsys):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(record("v5.py", [], lines=[[1.0, "no steps"]])))
    assert "without step lines" in short_exit(training_logs.main, [f"--out={tmp_path / 'o.md'}", str(path)], capsys)
