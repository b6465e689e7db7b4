"""``copslp solve`` as a shell script sees it: run as subprocesses.

On success stdout is one JSON document and nothing else; on bad input stdout is empty,
stderr holds one line naming the problem, and the exit status is 2.
"""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import copslp

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "copslp.cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def assert_json(done) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # the whole of stdout, or this raises


def assert_refused(done, *words) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert done.stdout == ""
    message = done.stderr.strip()
    assert message and "\n" not in message, done.stderr
    assert "Traceback" not in message
    for word in words:
        assert word in message, (word, message)
    return message


@pytest.fixture
def scores3(tmp_path):
    """Three scores of length 300 in an .npz and the same as a (3, D) .npy."""
    values = np.random.default_rng(0).random((3, 300))
    np.savez(tmp_path / "scores.npz", snip=values[0], synflow=values[1], grasp=values[2])
    np.save(tmp_path / "scores.npy", values)
    return values


# ---------------------------------------------------------------------------- clean stdout


@pytest.mark.parametrize("method, extra", [
    ("highs", []), ("milp", []), ("analytic", ["--gamma", "0.9", "0.9"]), ("analytic", ["--bounds", "25", "24"]),
])
def test_stdout_is_only_json_whatever_the_method(tmp_path, scores3, method, extra):
    done = run_cli("solve", tmp_path / "scores.npz", "--budget", "30", "--method", method, *extra)
    summary = assert_json(done)
    assert summary["method"] == method and summary["budget"] == 30


def test_keys_order_and_out_file_written_exactly_where_asked(tmp_path, scores3):
    out = tmp_path / "mask.out"
    done = run_cli("solve", tmp_path / "scores.npz", "--keys", "grasp", "snip", "--budget", "0.1", "--out", out)
    summary = assert_json(done)
    assert summary["budget"] == 30
    with np.load(out) as saved:
        mask = saved["mask"]
    expected = copslp.solve([scores3[2], scores3[0]], 0.1).mask
    assert np.array_equal(mask, expected)


# ---------------------------------------------------------------------------- bounds switched off in a list


@pytest.mark.parametrize("off", ["-inf", "none", "None", "off"])
def test_a_bound_switched_off_inside_a_list(tmp_path, scores3, off):
    done = run_cli("solve", tmp_path / "scores.npy", "--budget", "30", "--bounds", off, "5")
    summary = assert_json(done)
    expected = copslp.solve(scores3, 30, bounds=[-np.inf, 5.0])
    assert summary["thresholds"] == [None, 5.0]
    assert summary["objective"] == pytest.approx(expected.objective, rel=1e-12)


def test_a_bound_that_is_not_a_number(tmp_path, scores3):
    assert_refused(run_cli("solve", tmp_path / "scores.npy", "--budget", "30", "--bounds", "abc", "5"),
                   "--bounds", "'abc'")


def test_a_nan_bound(tmp_path, scores3):
    assert_refused(run_cli("solve", tmp_path / "scores.npy", "--budget", "30", "--bounds", "nan", "5"), "bounds")


# ---------------------------------------------------------------------------- unusable files


def test_missing_file(tmp_path):
    assert_refused(run_cli("solve", tmp_path / "nothing.npz", "--budget", "3"), "nothing.npz")


def test_a_folder_instead_of_a_file(tmp_path):
    (tmp_path / "folder.npy").mkdir()
    assert_refused(run_cli("solve", tmp_path / "folder.npy", "--budget", "3"), "folder.npy")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file(tmp_path, scores3):
    path = tmp_path / "scores.npz"
    path.chmod(0)
    assert_refused(run_cli("solve", path, "--budget", "3"), "scores.npz")


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_garbage_file_gets_no_pickle_advice(tmp_path, suffix):
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(b"these are not scores\n" * 20)
    message = assert_refused(run_cli("solve", path, "--budget", "3"), str(path.name), "not")
    assert "pickle" not in message


def test_truncated_npz(tmp_path, scores3):
    data = (tmp_path / "scores.npz").read_bytes()
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[: len(data) // 2])
    assert_refused(run_cli("solve", path, "--budget", "3"), "truncated.npz")


def test_npz_with_a_corrupt_member(tmp_path, scores3):
    path = tmp_path / "corrupt.npz"
    np.savez_compressed(path, a=scores3[0], b=scores3[1])
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("a.npy")
    start = info.header_offset + 30 + len(info.filename) + 40  # inside the compressed data
    data[start:start + 64] = bytes(64)
    path.write_bytes(bytes(data))
    assert_refused(run_cli("solve", path, "--budget", "3"), "corrupt.npz")


def test_truncated_npy(tmp_path, scores3):
    data = (tmp_path / "scores.npy").read_bytes()
    path = tmp_path / "truncated.npy"
    path.write_bytes(data[:500])
    assert_refused(run_cli("solve", path, "--budget", "3"), "truncated.npy")


def test_npy_of_python_objects(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    message = assert_refused(run_cli("solve", path, "--budget", "1"), "objects.npy", "numeric")
    assert "allow_pickle" not in message


def test_unknown_suffix(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("1,2,3\n")
    assert_refused(run_cli("solve", path, "--budget", "1"), ".npy", ".npz")


def test_missing_keys_are_named_with_what_the_file_holds(tmp_path, scores3):
    message = assert_refused(run_cli("solve", tmp_path / "scores.npz", "--keys", "snip", "magnitude", "--budget", "3"),
                             "magnitude", "synflow")
    assert not message.startswith("copslp solve: '")  # not a KeyError's quoted repr


def test_keys_with_an_npy(tmp_path, scores3):
    assert_refused(run_cli("solve", tmp_path / "scores.npy", "--keys", "a", "--budget", "3"), "--keys")


# ---------------------------------------------------------------------------- --out checked before solving


def test_out_in_a_missing_folder_is_refused_before_solving(tmp_path, scores3):
    # an infeasible problem: were it solved first, the message would be about infeasibility
    message = assert_refused(run_cli("solve", tmp_path / "scores.npz", "--budget", "30", "--bounds", "1e9", "0",
                                     "--out", tmp_path / "missing" / "mask.npz"), "--out")
    assert "infeasible" not in message.lower()


def test_out_that_is_a_folder_is_refused(tmp_path, scores3):
    assert_refused(run_cli("solve", tmp_path / "scores.npz", "--budget", "3", "--out", tmp_path), "--out")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes everywhere")
def test_out_in_a_read_only_folder_is_refused(tmp_path, scores3):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    assert_refused(run_cli("solve", tmp_path / "scores.npz", "--budget", "3", "--out", folder / "m.npz"), "--out")


# ---------------------------------------------------------------------------- other bad input


def test_infeasible_problem(tmp_path, scores3):
    assert_refused(run_cli("solve", tmp_path / "scores.npz", "--budget", "30", "--bounds", "1e9", "0"), "bound")


@pytest.mark.parametrize("budget", ["abc", "0", "1.5", "400"])
def test_bad_budget(tmp_path, scores3, budget):
    assert_refused(run_cli("solve", tmp_path / "scores.npz", "--budget", budget), "budget")


def test_unknown_method(tmp_path, scores3):
    assert_refused(run_cli("solve", tmp_path / "scores.npz", "--budget", "3", "--method", "simplex"), "simplex")


def test_argparse_errors_are_one_line_too(tmp_path, scores3):
    assert_refused(run_cli("solve", tmp_path / "scores.npz"), "--budget")


# ---------------------------------------------------------------------------- headers and memory


def _header_only(path: Path, shape, descr="<f8", version=(1, 0)) -> Path:
    """An .npy file whose header claims ``shape`` and which holds one row of data at most."""
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    with open(path, "wb") as handle:
        write = np.lib.format.write_array_header_1_0 if version == (1, 0) else np.lib.format.write_array_header_2_0
        write(handle, header)
        handle.write(bytes(8 * 64))
    return path


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_npy_header_claiming_more_than_the_file_holds(tmp_path, version):
    path = _header_only(tmp_path / "huge.npy", (2, 100_000_000_000), version=version)  # 1.46 TiB claimed
    message = assert_refused(run_cli("solve", path, "--budget", "3"), "huge.npy", "(2, 100000000000)")
    assert "1600000000000 bytes" in message and "MemoryError" not in message


def test_npz_member_header_claiming_more_than_it_holds(tmp_path):
    member = _header_only(tmp_path / "a.npy", (100_000_000_000,))
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(member, "a.npy")
    assert_refused(run_cli("solve", path, "--budget", "3"), "huge.npz", "'a'", "(100000000000,)")


def test_npy_is_mapped_not_read(tmp_path, scores3):
    """A float64 .npy is mapped, not read into memory, and solved as the array it holds."""
    from copslp.cli import _load_scores

    loaded = _load_scores(tmp_path / "scores.npy", None)
    assert isinstance(loaded, np.memmap) and np.array_equal(loaded, scores3)
    done = run_cli("solve", tmp_path / "scores.npy", "--budget", "30", "--gamma", "0.8")
    assert assert_json(done)["objective"] == pytest.approx(copslp.solve(scores3, 30, gamma=0.8).objective, rel=1e-12)


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_arrays_larger_than_the_free_memory_are_refused_before_loading(tmp_path, suffix):
    """An .npz member is read into memory, and integers are converted to float64: both are
    measured against the free memory (here said to be 1000 bytes) before anything is loaded."""
    values = np.arange(400, dtype=np.int64).reshape(2, 200)
    path = tmp_path / f"ints{suffix}"
    np.save(path, values) if suffix == ".npy" else np.savez(path, a=values[0], b=values[1])
    script = ("import sys, copslp.cli\n"
              "copslp.cli._free_memory = lambda: 1000\n"
              f"sys.exit(copslp.cli.main(['solve', {str(path)!r}, '--budget', '4']))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert_refused(done, path.name, "int64", "1000 bytes free")


def test_library_noise_never_reaches_stdout(tmp_path):
    """Whatever a library writes on file descriptor 1 while solving (LAPACK's xerbla, a
    solver's banner) goes to stderr: stdout holds the JSON document or nothing."""
    values = np.random.default_rng(3).random((2, 400))
    np.save(tmp_path / "s.npy", values)
    script = ("import os, sys, copslp.cli, copslp._solve as s\n"
              "real = s.solve\n"
              "def noisy(*a, **k):\n"
              "    os.write(1, b' ** On entry to DLASCL parameter number  4 had an illegal value\\n')\n"
              "    return real(*a, **k)\n"
              "copslp.cli.solve = noisy\n"
              f"sys.exit(copslp.cli.main(['solve', {str(tmp_path / 's.npy')!r}, '--budget', '40']))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert_json(done)
    assert "DLASCL" in done.stderr


def test_scores_whose_sums_overflow_are_one_line_with_three_scores(tmp_path):
    """Regression: finite scores near 1e303 with n = 3 at D = 2^20 ended in LinAlgError, with
    LAPACK's lines on stdout; now validation's ValueError, one line, exit 2, stdout empty."""
    path = tmp_path / "large.npy"
    np.save(path, np.random.default_rng(0).random((3, 2**20)) * 1e303)
    message = assert_refused(run_cli("solve", path, "--budget", "0.5", "--gamma", "0.5"), "overflow", "rescale")
    assert "SVD" not in message
