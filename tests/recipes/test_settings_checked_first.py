"""Settings that would fail late fail first, in one line naming the setting, before any data is made or
any step taken (train.py) and before any sampling (sample.py)."""

import subprocess
import sys

import pytest

from test_train import ROOT, run_train  # tests/recipes is on sys.path (pytest rootdir-relative imports)

CASES = {
    "data.batch_size=0": ("model=digit_cnn", "data.batch_size=0: expected an integer >= 1"),
    "data.seq_len=0": ("model=dllm_code", "data.seq_len=0: expected an integer >= 1"),
    "seed=abc": ("model=digit_cnn", "seed='abc': expected an integer"),
    "export_dtype=fp8": ("model=digit_cnn", "export_dtype='fp8': expected one of"),
}


@pytest.mark.parametrize("setting", sorted(CASES))
def test_a_bad_training_setting_fails_before_training(tmp_path, setting):
    model, message = CASES[setting]
    result = run_train(tmp_path / "run", model, setting, f"export_dir={tmp_path / 'export'}", timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert message in result.stderr
    assert not (tmp_path / "run" / "csv").exists()  # no step was logged: nothing trained


def test_an_unwritable_sample_folder_fails_before_sampling(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = subprocess.run([sys.executable, "recipes/sample.py", "model=vq-mnist", f"out_dir={blocker / 'x'}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "out_dir" in result.stderr and "cannot be written" in result.stderr


@pytest.mark.slow
def test_a_resume_file_of_another_model_or_truncated_is_refused_before_training(tmp_path):
    result = run_train(tmp_path / "vq", "model=vq_mnist", "debug=fast", "trainer.max_steps=2", "ckpt_every_n_steps=2")
    assert result.returncode == 0, result.stderr[-2000:]
    last = tmp_path / "vq" / "checkpoints" / "last.ckpt"
    result = run_train(tmp_path / "cnn", "model=digit_cnn", "debug=fast", f"resume={last}", timeout=120)
    assert result.returncode != 0 and "a checkpoint of another model" in result.stderr
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(last.read_bytes()[:1000])
    result = run_train(tmp_path / "t", "model=vq_mnist", "debug=fast", f"resume={truncated}", timeout=120)
    assert result.returncode != 0 and "cannot be read as a Lightning checkpoint" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "t" / "csv").exists()
