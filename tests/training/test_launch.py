"""Training in real subprocesses: two processes under `accelerate launch`, and a run killed with SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from cod_diffc.training import CodTrainer
from cod_diffc.training.checkpointing import list_checkpoints

from training_helpers import TINY_CONFIG


def subprocess_env() -> dict[str, str]:
    # One thread per process (two processes share two cores), and gloo on the CPU even where a GPU exists.
    return {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}


def train_command(image_folder, output_dir, *overrides) -> list[str]:
    return [
        "--config",
        str(TINY_CONFIG),
        f"data.train_dir={image_folder}",
        f"run.output_dir={output_dir}",
        "validation.every=0",
        *overrides,
    ]


def test_two_processes_under_accelerate_launch_match_one_process_with_accumulation(make_config, tmp_path):
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "cod_diffc", "train"]
    config = make_config("run.max_steps=2", "run.log_every=1", output="single")
    result = subprocess.run(
        launch + train_command(config.data.train_dir, tmp_path / "ddp", "run.max_steps=2", "run.log_every=1"),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 per process x 2 processes" in (tmp_path / "ddp" / "train.log").read_text()

    # The same global batch of 4 on one process, as 2 micro-batches of 2: the same samples and noise.
    single = make_config("run.max_steps=2", "run.log_every=1", "optim.gradient_accumulation_steps=2", output="single")
    CodTrainer(single).train()
    ddp_log = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    single_log = [json.loads(line) for line in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    assert ddp_log[0]["loss"] == pytest.approx(single_log[0]["loss"], rel=1e-5)
    ddp = load_file(str(tmp_path / "ddp" / "checkpoints" / "checkpoint-00000002" / "model.safetensors"))
    one = load_file(str(tmp_path / "single" / "checkpoints" / "checkpoint-00000002" / "model.safetensors"))
    assert all(torch.allclose(ddp[name], one[name], atol=1e-4) for name in one)


def test_a_run_killed_with_sigkill_resumes_from_its_last_complete_checkpoint(make_config, tmp_path):
    endless = ("run.max_steps=100000", "run.checkpoint_every=1")
    config = make_config(*endless, output="killed")
    command = [sys.executable, "-m", "cod_diffc", "train"]
    command += train_command(config.data.train_dir, tmp_path / "killed", *endless)
    process = subprocess.Popen(command, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while len(list_checkpoints(tmp_path / "killed")) < 2 and time.monotonic() < deadline:
            assert process.poll() is None, "the training process ended on its own"
            time.sleep(0.05)
        time.sleep(0.13)  # land somewhere inside a step or a checkpoint write
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    last_step = list_checkpoints(tmp_path / "killed")[-1][0]
    assert last_step >= 1

    resumed = CodTrainer(make_config(f"run.max_steps={last_step + 1}", output="killed"), resume=True)
    resumed.train()
    assert not any(path.name.startswith(".") for path in (tmp_path / "killed" / "checkpoints").iterdir())

    CodTrainer(make_config(f"run.max_steps={last_step + 1}", "run.checkpoint_every=1000", output="straight")).train()
    name = f"checkpoint-{last_step + 1:08d}"
    expected = load_file(str(tmp_path / "straight" / "checkpoints" / name / "model.safetensors"))
    actual = load_file(str(tmp_path / "killed" / "checkpoints" / name / "model.safetensors"))
    assert all(torch.equal(expected[key], actual[key]) for key in expected)
