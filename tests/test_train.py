"""The training loop: learning on real data, determinism, resumption, corrupt
checkpoints, divergence, and two processes with gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest
import torch

from cnnlib import UserError
from cnnlib import train as train_module
from cnnlib.augment import augment
from cnnlib.checkpoint import load_checkpoint, save_checkpoint
from cnnlib.config import TrainConfig
from cnnlib.data import DataSplit
from cnnlib.evaluate import default_eval_batch_size, evaluate, evaluate_checkpoint, model_from_checkpoint
from cnnlib.optim import lr_factor, schedule_position
from cnnlib.record import Preprocess
from cnnlib.train import train

FAST = dict(model="lenet5", dataset="digits", device="cpu", progress=False)


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.state_dict().items()}


def assert_same_weights(first: torch.nn.Module, second: torch.nn.Module) -> None:
    a, b = weights(first), weights(second)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_digits_learns_and_writes_results(tmp_path):
    result = train(TrainConfig(**FAST, epochs=12, out=str(tmp_path)))
    assert result.metrics.test_accuracy > 0.9
    assert list(result.history["epoch"]) == list(range(1, 13))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in (
        "test_accuracy",
        "epochs",
        "train_seconds",
        "train_images_per_second",
        "device",
        "params",
        "dataset",
        "model",
        "torch_version",
        "seed",
        "world_size",
        "config",
    ):
        assert key in metrics, key
    assert metrics["params"] == 61_706 and metrics["world_size"] == 1 and metrics["device"] == "cpu"
    assert (tmp_path / "history.csv").read_text().startswith("epoch,")
    report = evaluate_checkpoint(tmp_path / "checkpoint.pt", device="cpu")
    assert report["test_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)


@pytest.mark.slow
def test_real_mnist_reaches_a_floor(tmp_path, data_root):
    # 12,000 real MNIST training images, 3 epochs on the CPU: a smoke run of the chapter's recipe.
    result = train(
        TrainConfig(
            **{**FAST, "dataset": "mnist"},
            data_root=str(data_root),
            subset=12000,
            epochs=3,
            out=str(tmp_path),
        )
    )
    assert result.data.input_shape == (1, 32, 32)  # padded from 28, LeCun et al. Sec. III-A
    assert result.metrics.test_accuracy > 0.96


def test_same_seed_same_weights_and_resume_is_exact(tmp_path):
    straight = train(TrainConfig(**FAST, epochs=2, out=str(tmp_path / "a")))
    again = train(TrainConfig(**FAST, epochs=2, out=str(tmp_path / "b")))
    assert_same_weights(straight.model, again.model)

    first = train(TrainConfig(**FAST, epochs=2, stop_after=1, out=str(tmp_path / "c")))
    assert len(first.history) == 1 and load_checkpoint(tmp_path / "c" / "checkpoint.pt")["epoch"] == 1
    resumed = train(TrainConfig(**FAST, epochs=2, resume=True, out=str(tmp_path / "c")))
    assert list(resumed.history["epoch"]) == [1, 2]
    assert_same_weights(straight.model, resumed.model)


def test_resume_refuses_other_settings(tmp_path):
    train(TrainConfig(**FAST, epochs=2, stop_after=1, out=str(tmp_path)))
    with pytest.raises(UserError, match=r"Cannot resume .*lr=0\.05 there, 0\.01 now"):
        train(TrainConfig(**FAST, epochs=2, lr=0.01, resume=True, out=str(tmp_path)))


def test_corrupt_truncated_and_foreign_checkpoints(tmp_path):
    train(TrainConfig(**FAST, epochs=1, out=str(tmp_path)))
    good = (tmp_path / "checkpoint.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match="corrupt or truncated"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match="corrupt or truncated"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(UserError, match="not a cnnlib checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    state["config"]["model_options"] = {"variant": "paper"}
    mismatched = tmp_path / "mismatched.pt"
    save_checkpoint(
        mismatched, {key: value for key, value in state.items() if key not in ("format", "version")}
    )
    with pytest.raises(UserError, match="does not fit this model"):
        model_from_checkpoint(mismatched)


def test_atomic_save_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint.pt"
    save_checkpoint(target, {"epoch": 1})

    def interrupted_save(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(target, {"epoch": 2})
    assert [path.name for path in tmp_path.iterdir()] == ["checkpoint.pt"]
    monkeypatch.undo()
    assert load_checkpoint(target)["epoch"] == 1


def test_divergence_stops_with_the_step_and_keeps_the_good_checkpoint(tmp_path, monkeypatch):
    import cnnlib.train as training

    real_batch = training.training_batch
    checkpoint = tmp_path / "checkpoint.pt"

    def poisoned_after_first_epoch(*args, **kwargs):
        x, y = real_batch(*args, **kwargs)
        return (x * float("nan") if checkpoint.exists() else x), y

    monkeypatch.setattr(training, "training_batch", poisoned_after_first_epoch)
    with pytest.raises(
        UserError,
        match=r"NaN or infinite at epoch 2, step 1 \(lr 0\.05\): lower the learning rate, "
        r"e\.g\. --lr 0\.005; the last good checkpoint .* after epoch 1\) is kept",
    ):
        train(TrainConfig(**FAST, epochs=3, out=str(tmp_path)))
    assert load_checkpoint(checkpoint)["epoch"] == 1


def test_a_runs_crop_padding_replaces_the_data_sets_own(tmp_path):
    def first_loss(**settings) -> float:
        config = TrainConfig(**FAST, epochs=1, augment="crop", amp=False, **settings, out=str(tmp_path))
        return float(train(config).history["train_loss"][0])

    default = first_loss()  # LeNet-5 takes the digits padded to 32×32, whose own crop padding is 2 pixels
    assert first_loss(crop_padding=2) == default and first_loss(crop_padding=4) != default


def test_augmentation_shifts_and_flips_on_the_device():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).reshape(2, 1, 4, 4)
    generator = torch.Generator().manual_seed(0)
    shifted = augment(x, "crop", 1, generator)
    assert shifted.shape == x.shape and shifted.dtype == torch.uint8
    flipped = augment(x, "flip", 0, torch.Generator().manual_seed(3))
    for original, out in zip(x, flipped):
        assert torch.equal(out, original) or torch.equal(out, original.flip(2))
    # Every crop is a window of the zero-padded image.
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    windows = padded.unfold(2, 4, 1).unfold(3, 4, 1)  # (N, C, 3, 3, 4, 4)
    for image, out in enumerate(shifted):
        assert any(torch.equal(windows[image, 0, i, j], out[0]) for i in range(3) for j in range(3))


def test_reflect_padding_crops_windows_of_the_image_reflected_at_its_edges():
    x = torch.randint(1, 255, (8, 3, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    shifted = augment(x, "crop", 2, torch.Generator().manual_seed(0), padding_mode="reflect")
    assert shifted.dtype == torch.uint8 and not (shifted == 0).any()  # no black border, as zeros give
    reflected = torch.nn.functional.pad(x.float(), (2, 2, 2, 2), mode="reflect").to(torch.uint8)
    windows = reflected.unfold(2, 6, 1).unfold(3, 6, 1)  # (N, C, 5, 5, 6, 6)
    for image, out in enumerate(shifted):
        assert any(torch.equal(windows[image, :, i, j], out) for i in range(5) for j in range(5))
    with pytest.raises(UserError, match="padding_mode"):
        train(TrainConfig(**FAST, epochs=1, padding_mode="mirror"))


@pytest.mark.parametrize("schedule", ["none", "step", "cosine", "onecycle"])
def test_schedules_warm_up_then_follow_their_shape(schedule):
    factor = lr_factor(schedule, 0.1, 100)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    end = {"none": 1.0, "step": 0.01, "cosine": 0.0, "onecycle": 0.0}[schedule]
    assert factor(100) == pytest.approx(end, abs=1e-3)


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_a_schedule_can_start_and_end_above_zero_as_airbench94s_does(schedule):
    # airbench94's get_lr: from 0.2 of the peak to the peak over the warm-up, then down to 0.07 (its code).
    factor = lr_factor(schedule, 0.25, 100, warmup_from=0.2, anneal_to=0.07)
    assert factor(0) == pytest.approx(0.2 + 0.8 / 25) and factor(24) == pytest.approx(1.0)
    assert factor(100) == pytest.approx(0.07) and factor(130) == pytest.approx(0.07)  # and stays there
    assert factor(62.5) == pytest.approx(0.535)  # halfway down: 0.07 + 0.93 / 2 for both shapes
    with pytest.raises(UserError, match=r"^anneal_to is where a cosine or one-cycle schedule ends.*'step"):
        train(TrainConfig(**FAST, epochs=1, schedule="step", anneal_to=0.1))


def test_schedule_position_follows_the_steps_or_the_clock_whichever_is_further():
    assert schedule_position(10, 30.0, 100, None) == 10  # no budget: the steps
    assert schedule_position(10, 30.0, 100, 60.0) == 50  # half the budget spent: half the schedule
    assert schedule_position(80, 30.0, 100, 60.0) == 80  # the steps further along


def test_a_time_budget_ends_the_run_and_its_schedule_on_time(tmp_path):
    result = train(TrainConfig(**FAST, epochs=1000, time_budget=2.0, out=str(tmp_path)))
    history, metrics = result.history, result.metrics
    assert metrics.train_seconds <= 2.0
    assert 1 <= metrics.epochs < 1000 and metrics.epochs_trained <= metrics.epochs
    # The clock, not the 1,000 epochs' steps, ran the one-cycle schedule: its rate is near zero at the end.
    assert history["lr"].iloc[-1] < 0.2 * result.record.config.lr
    assert metrics.test_accuracy > 0.3  # chance is 0.1; a loaded 2-core machine fits only 2 or 3 epochs
    # Resuming a run its budget ended trains nothing more.
    resumed = train(TrainConfig(**FAST, epochs=1000, time_budget=2.0, resume=True, out=str(tmp_path)))
    assert len(resumed.history) == len(history)


def test_a_budget_that_ended_at_an_epochs_end_still_holds_no_step_on_resume(tmp_path, monkeypatch):
    # A clock that moves one second per reading makes the budget's decisions exact: an epoch of S steps reads
    # S + 1 seconds, and the budget holds a step only while two more steps' seconds fit.
    ticks = iter(range(10**9))
    monkeypatch.setattr(train_module, "time", types.SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    epoch_seconds = float(
        train(TrainConfig(**FAST, epochs=1, out=str(tmp_path / "one"))).history["train_seconds"][0]
    )
    # Three whole epochs fit; a fourth's first step would end past the budget, so the run stops between
    # epochs.
    budget = 3 * epoch_seconds + 1.5
    ended = train(TrainConfig(**FAST, epochs=1000, time_budget=budget, out=str(tmp_path / "run")))
    assert (
        list(ended.history["epoch"]) == [1, 2, 3]
        and list(ended.history["train_seconds"]) == [epoch_seconds] * 3
    )
    resumed = train(
        TrainConfig(**FAST, epochs=1000, time_budget=budget, resume=True, out=str(tmp_path / "run"))
    )
    assert list(resumed.history["epoch"]) == [1, 2, 3]


def test_bad_settings_are_one_sentence_errors():
    with pytest.raises(UserError, match="Unknown optimizer 'lbfgs': choose one of sgd, adam"):
        train(TrainConfig(**FAST, optimizer="lbfgs"))
    with pytest.raises(UserError, match="Unknown model 'lenet6'"):
        train(TrainConfig(**{**FAST, "model": "lenet6"}))
    with pytest.raises(UserError, match="eval_batch_size must be positive, not 0."):
        train(TrainConfig(**FAST, eval_batch_size=0))
    with pytest.raises(UserError, match="time_budget must be positive, not -5."):
        train(TrainConfig(**FAST, time_budget=-5))


def test_evaluation_batches_are_cache_sized_on_a_cpu_and_do_not_change_the_result():
    assert default_eval_batch_size(torch.device("cpu")) == 64
    assert default_eval_batch_size(torch.device("cuda")) == 1024
    result = train(TrainConfig(**FAST, epochs=1))
    assert len(result.data.test_y) > 64  # so the default splits the test set into several batches
    by_default, in_one = (
        evaluate(result.model, result.data),
        evaluate(result.model, result.data, batch_size=1024),
    )
    assert torch.equal(by_default["predictions"], in_one["predictions"])
    assert by_default["loss"] == pytest.approx(in_one["loss"], rel=1e-5)
    assert result.metrics.final_train_accuracy == result.history["train_accuracy"].iloc[-1]


def test_accuracy_is_the_exact_fraction_of_test_images_right():
    class AlwaysFirstClass(torch.nn.Module):
        def forward(self, x):
            return torch.eye(2)[torch.zeros(len(x), dtype=torch.long)]

    labels = torch.cat([torch.zeros(8_200, dtype=torch.long), torch.ones(1_800, dtype=torch.long)])
    images = torch.zeros(10_000, 1, 1, 1, dtype=torch.uint8)
    data = DataSplit(
        "two classes",
        images,
        labels,
        images,
        labels,
        Preprocess(["a", "b"], (1, 1, 1), (0.5,), (0.25,)),
        "made here",
    )
    assert (
        evaluate(AlwaysFirstClass(), data, amp=False)["accuracy"] == 0.82
    )  # a float32 mean gives 0.81999999


@pytest.mark.parametrize("loss", ["mse", "hinge"])
def test_the_other_losses_learn_digits(tmp_path, loss):
    result = train(TrainConfig(**FAST, epochs=8, loss=loss, out=str(tmp_path)))
    assert result.metrics.test_accuracy > 0.8 and result.record.config.loss == loss


def test_probability_mse_is_the_brier_score():
    from cnnlib.optim import ProbabilityMSE

    # Softmax of (0, 0) is (1/2, 1/2); of (log 3, 0) is (3/4, 1/4).
    logits, target = (
        torch.tensor([[0.0, 0.0], [float(torch.log(torch.tensor(3.0))), 0.0]]),
        torch.tensor([0, 1]),
    )
    brier = ((0.5 - 1) ** 2 + 0.5**2 + 0.75**2 + (0.25 - 1) ** 2) / 2
    assert ProbabilityMSE()(logits, target).item() == pytest.approx(brier)
    with pytest.raises(UserError, match="Label smoothing has no meaning for the hinge loss"):
        train(TrainConfig(**FAST, loss="hinge", label_smoothing=0.1))
    with pytest.raises(UserError, match="Unknown loss 'l1': choose one of cross_entropy, mse, hinge"):
        train(TrainConfig(**FAST, loss="l1"))


def test_lr_range_test_falls_then_stops_when_the_loss_blows_up():
    from cnnlib.lr_range import lr_range_test

    frame = lr_range_test(TrainConfig(**FAST, optimizer="adam"), start=1e-4, end=10.0, steps=100)
    ratios = frame["lr"].iloc[1:].to_numpy() / frame["lr"].iloc[:-1].to_numpy()
    assert frame["lr"].iloc[0] == pytest.approx(1e-4) and ratios == pytest.approx((10 / 1e-4) ** (1 / 99))
    assert frame["smoothed_loss"].iloc[0] == pytest.approx(2.3, abs=0.15)  # ln 10 for an untrained model
    assert frame["smoothed_loss"].min() < 0.8 * frame["smoothed_loss"].iloc[0]
    assert len(frame) < 100  # stopped once the loss exploded at the large learning rates
    assert 1e-4 < frame.attrs["suggested_lr"] < 10


def test_ema_tta_label_smoothing_and_clipping_run_and_are_recorded(tmp_path):
    result = train(
        TrainConfig(
            **FAST,
            epochs=4,
            ema=0.9,
            tta="flip",
            label_smoothing=0.1,
            grad_clip=1.0,
            schedule="cosine",
            out=str(tmp_path),
        )
    )
    config = json.loads((tmp_path / "metrics.json").read_text())["config"]
    assert (config["ema"], config["tta"], config["label_smoothing"], config["grad_clip"]) == (
        0.9,
        "flip",
        0.1,
        1.0,
    )
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["ema"] is not None and int(state["ema"]["n_averaged"]) > 0
    # The model a run returns, and the one its checkpoint restores, are the EMA weights.
    restored, _ = model_from_checkpoint(tmp_path / "checkpoint.pt")
    assert_same_weights(restored, result.model)
    report = evaluate_checkpoint(tmp_path / "checkpoint.pt", device="cpu")
    assert report["test_accuracy"] == pytest.approx(result.metrics.test_accuracy, abs=1e-6)
    assert result.metrics.test_accuracy > 0.5


def test_bf16_autocast_where_the_cpu_has_it_and_the_precision_is_recorded(tmp_path):
    from cnnlib.device import autocast, cpu_has_native_bf16

    native = cpu_has_native_bf16()
    conv, x = torch.nn.Conv2d(3, 4, 3), torch.randn(2, 3, 8, 8)
    with autocast(torch.device("cpu"), True):
        assert conv(x).dtype == (torch.bfloat16 if native else torch.float32)
    with autocast(torch.device("cpu"), False):
        assert conv(x).dtype == torch.float32
    # Colour images: the recipe turns bf16 on; LeNet-5 on digits stays fp32 (no gain at its size).
    colour = train(
        TrainConfig(
            model="nin",
            dataset="cifar10",
            subset=64,
            epochs=1,
            batch_size=32,
            device="cpu",
            progress=False,
            model_options={"width_mult": 0.25},
            out=str(tmp_path / "colour"),
        )
    )
    assert colour.record.config.amp is True
    assert colour.metrics.precision == ("bf16" if native else "fp32")
    digits = train(TrainConfig(**FAST, epochs=1, out=str(tmp_path / "digits")))
    assert digits.record.config.amp is False and digits.metrics.precision == "fp32"
    off = train(TrainConfig(**FAST, epochs=1, amp=False, recipe="cnn-colour", out=str(tmp_path / "off")))
    assert off.metrics.precision == "fp32"
    with pytest.raises(UserError, match="amp must be True or False"):
        train(TrainConfig(**FAST, epochs=1, amp="yes", out=str(tmp_path / "bad")))


@pytest.mark.parametrize("dataset, subset", [("digits", None), ("mnist", 300)])
def test_the_seed_never_changes_the_data(dataset, subset):
    """A run's seed draws its initial weights and batch order, not its split or subset."""
    from cnnlib.run_state import prepare_data

    first, second = (
        prepare_data(
            TrainConfig(**{**FAST, "dataset": dataset}, subset=subset, seed=seed), torch.device("cpu")
        )
        for seed in (0, 1)
    )
    assert torch.equal(first.test_x, second.test_x) and torch.equal(first.test_y, second.test_y)
    assert torch.equal(first.train_x, second.train_x)


def test_an_epoch_smaller_than_a_batch_is_divided_by_the_images_it_had(tmp_path):
    # 60 images of two classes at batch 256: the epoch is one step of 60 images, not of 256.
    dark, light = (
        torch.zeros(30, 1, 32, 32, dtype=torch.uint8),
        torch.full((30, 1, 32, 32), 255, dtype=torch.uint8),
    )
    images, labels = torch.cat([dark, light]), torch.tensor([0] * 30 + [1] * 30)
    small = DataSplit(
        "two",
        images,
        labels,
        images,
        labels,
        Preprocess(["dark", "light"], (1, 32, 32), (0.5,), (0.5,)),
        "two colours",
    )
    result = train(
        TrainConfig(
            **FAST,
            epochs=3,
            batch_size=256,
            optimizer="adam",
            lr=0.01,
            schedule="none",
            augment="none",
            out=str(tmp_path),
        ),
        data=small,
    )
    history = result.history
    seen = history["images_per_second"] * history["train_seconds"]
    assert seen.round(6).tolist() == [60.0, 60.0, 60.0]
    correct = history["train_accuracy"] * 60
    assert (correct - correct.round()).abs().max() < 1e-9
    assert history["train_accuracy"].iloc[-1] > 0.9  # 60/256 = 23 % was the ceiling before


@pytest.mark.slow
def test_gloo_matches_one_process_at_the_same_global_batch(tmp_path):
    """Two processes of 64 images each compute the gradient of the same 128-image batch as one process."""
    script = tmp_path / "run.py"
    script.write_text(
        "import sys\nfrom cnnlib.config import TrainConfig\nfrom cnnlib.train import train\n"
        "train(TrainConfig(model='lenet5', dataset='digits', epochs=1, batch_size=128, augment='none',"
        " amp=False, device='cpu', progress=False, out=sys.argv[1]))\n"
    )
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            "29533",
            str(script),
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "one")],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.stdout.count("epoch   1/1") == 1  # rank 0 alone logs
    first, second = (load_checkpoint(tmp_path / run / "checkpoint.pt")["model"] for run in ("one", "two"))
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["world_size"] == 2
    for key in first:
        assert torch.allclose(first[key].float(), second[key].float(), atol=1e-4), key


def test_a_budget_ending_at_an_epochs_end_still_tests_the_last_epoch_and_writes_valid_json(
    tmp_path, monkeypatch
):
    # The run of issue 41 point 4: eval_every 2, and the budget ends the run after epoch 3, between two
    # epochs.
    ticks = iter(range(10**9))
    monkeypatch.setattr(train_module, "time", types.SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    one = train(TrainConfig(**FAST, epochs=1, validation=100, out=str(tmp_path / "one")))
    epoch_seconds = float(one.history["train_seconds"][0])
    result = train(
        TrainConfig(
            **FAST,
            epochs=1000,
            eval_every=2,
            validation=100,
            time_budget=3 * epoch_seconds + 1.5,
            out=str(tmp_path / "run"),
        )
    )
    assert list(result.history["epoch"]) == [1, 2, 3]
    last = result.history.iloc[-1]
    assert (
        last["test_accuracy"] > 0.2 and last["val_accuracy"] > 0.2
    )  # the last epoch is evaluated, whatever ended it
    assert result.history["test_accuracy"].notna().sum() == 1  # and the test set only once
    assert result.history["val_accuracy"].notna().tolist() == [False, True, True]

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    saved = json.loads((tmp_path / "run" / "metrics.json").read_text(), parse_constant=refuse)
    assert saved["test_accuracy"] == last["test_accuracy"] and saved["val_accuracy"] == last["val_accuracy"]


def test_a_complete_run_counts_whole_epochs(tmp_path):
    # 1,438 digits at batch 64: each epoch drops its last 30 images, so images ÷ training images read 2.96
    # of 3.
    result = train(TrainConfig(**FAST, epochs=3, batch_size=64, out=str(tmp_path)))
    assert result.metrics.epochs == 3 and result.metrics.epochs_trained == 3


def test_a_recipe_search_reads_the_validation_split_and_never_the_test_set(tmp_path, monkeypatch):
    splits = []
    real_evaluate = train_module.evaluate

    def watched(*args, split="test", **kwargs):
        splits.append(split)
        return real_evaluate(*args, split=split, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", watched)
    result = train(TrainConfig(**FAST, epochs=3, validation=200, final_test=False, out=str(tmp_path)))
    assert splits == ["val", "val", "val"]
    assert "test_accuracy" not in result.history and result.history["val_accuracy"].iloc[-1] > 0.2
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert (
        saved["test_accuracy"] is None and saved["validation_images"] == 200 and saved["train_images"] == 1238
    )
    assert saved["val_accuracy"] == result.history["val_accuracy"].iloc[-1]


def test_two_runs_never_write_into_one_folder(tmp_path):
    # A run holds its folder while it writes; a process that holds it and is killed (-9) lets it go.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom cnnlib.record import hold_folder\n"
            "with hold_folder(sys.argv[1]):\n    print('holding', flush=True)\n    time.sleep(600)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(
            UserError, match=rf"{tmp_path} is being written by another run \(process {holder.pid} "
        ):
            train(TrainConfig(**FAST, epochs=1, out=str(tmp_path)))
        assert not (tmp_path / "checkpoint.pt").exists()  # refused before it trained
    finally:
        holder.kill()
        holder.wait()
    assert train(TrainConfig(**FAST, epochs=1, out=str(tmp_path))).metrics.epochs == 1


def test_a_full_disk_is_one_sentence_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import errno

    import cnnlib.checkpoint

    train(TrainConfig(**FAST, epochs=2, stop_after=1, out=str(tmp_path)))
    kept = (tmp_path / "checkpoint.pt").read_bytes()

    def no_space(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cnnlib.checkpoint.os, "fsync", no_space)
    with pytest.raises(
        UserError,
        match=rf"Could not write {tmp_path / 'checkpoint.pt'}: No space left on device; "
        r"the previous checkpoint.pt is kept\.",
    ):
        train(TrainConfig(**FAST, epochs=2, resume=True, out=str(tmp_path)))
    monkeypatch.undo()
    assert (tmp_path / "checkpoint.pt").read_bytes() == kept
    assert not [
        path.name for path in tmp_path.iterdir() if path.name.endswith(".tmp")
    ]  # no temporary file left
    assert list(train(TrainConfig(**FAST, epochs=2, resume=True, out=str(tmp_path))).history["epoch"]) == [
        1,
        2,
    ]


def test_lookahead_moves_the_slow_weights_by_one_minus_the_decay_and_restarts_the_fast_ones():
    from cnnlib.optim import Lookahead

    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))
    lookahead = Lookahead(model)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[3.0, 6.0]]))
    lookahead.update(model, progress=1.0)  # decay 0.95**5 at the end of the run (Jordan 2024 §3.7)
    decay = 0.95**5
    expected = torch.tensor([[1.0, 2.0]]) * decay + torch.tensor([[3.0, 6.0]]) * (1 - decay)
    assert torch.allclose(lookahead.slow["weight"], expected)
    assert torch.equal(model.weight, lookahead.slow["weight"])
    lookahead.update(model, progress=0.0)  # decay 0 at the start: the slow weights take the fast ones
    with torch.no_grad():
        model.weight.add_(1.0)
    lookahead.finish(model)  # decay 1: the network ends on the slow weights
    assert torch.allclose(model.weight, expected)


def test_a_lookahead_run_resumes_exactly_and_ends_on_its_slow_weights(tmp_path):
    settings = dict(**FAST, epochs=3, lookahead=True, batch_size=64)
    straight = train(TrainConfig(**settings, out=str(tmp_path / "a")))
    first = train(TrainConfig(**settings, stop_after=1, out=str(tmp_path / "b")))
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["lookahead"] is not None
    resumed = train(TrainConfig(**settings, resume=True, out=str(tmp_path / "b")))
    assert_same_weights(straight.model, resumed.model)
    saved = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    for name, slow in saved["lookahead"].items():
        assert torch.equal(saved["model"][name], slow), name
    assert first.history["epoch"].tolist() == [1]
    assert straight.metrics.test_accuracy > 0.5  # it learns (chance: 0.1)


def test_ema_and_lookahead_together_are_refused_in_one_sentence():
    with pytest.raises(UserError, match=r"^ema and lookahead both average the weights.*--no-lookahead\.$"):
        train(TrainConfig(**FAST, epochs=1, ema=0.9, lookahead=True))
