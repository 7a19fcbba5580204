"""Training to convergence: learning-rate drops, epochs, several datasets, validation learning curves and the
held-out objects validation data is made from."""
import json
import shutil
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from diffgrasp_ros.cli.main import main

LOSSES = ("total", "diffusion", "affordance", "classifier", "width", "occupancy")


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def datasets(labelled_box_scenes, tmp_path_factory):
    """The two-scene box dataset and a copy (same chunk numbers and scene seeds), each with its grids rendered into
    its default cache once here."""
    from diffgrasp_ros.training.igd_train import GridCache, load_scenes

    load_scenes(labelled_box_scenes, GridCache(labelled_box_scenes / "igd_grid_cache"), log=lambda _: None)
    copy = tmp_path_factory.mktemp("copy") / "data"
    shutil.copytree(labelled_box_scenes, copy)
    return labelled_box_scenes, copy


def train_args(data, out, *more):
    return ["train", "--data", *map(str, data), "--out", str(out), "--tiny", "--threads", "1", "--batch-scenes", "1",
            "--log-every", "1", *more]


# -- the learning-rate schedule ---------------------------------------------------------------------------------
def test_the_learning_rate_drops_tenfold_at_each_drop_step_after_the_warm_up(tmp_path):
    from diffgrasp_ros.training.loop import LoopSettings

    settings = LoopSettings(tmp_path, lr=2e-4, warmup_steps=4, lr_drop_steps=(9, 11))
    lrs = [settings.learning_rate(step) for step in range(13)]
    np.testing.assert_allclose(lrs[:4], [5e-5, 1e-4, 1.5e-4, 2e-4])  # the update after step s: warm-up (s + 1) / 4
    np.testing.assert_allclose(lrs[4:9], 2e-4)
    np.testing.assert_allclose(lrs[9:11], 2e-5)
    np.testing.assert_allclose(lrs[11:], 2e-6)
    assert LoopSettings(tmp_path, warmup_steps=1).learning_rate(10 ** 6) == 1e-3  # no drops: constant


def toy_training(out, max_steps, resume=False):
    """``run_loop`` on a linear model with learning-rate drops after steps 5 and 9."""
    from diffgrasp_ros.training.atomic_files import torch_save_atomic
    from diffgrasp_ros.training.loop import LoopSettings, open_run, run_loop

    @dataclass
    class Config:
        size: int = 4

    settings = LoopSettings(out, max_steps=max_steps, lr=0.05, checkpoint_every=3, log_every=1, warmup_steps=2,
                            lr_drop_steps=(5, 9), resume=resume)
    run = open_run(settings)
    model = torch.nn.Linear(4, 1)
    model.config = Config()

    def losses(rng, generator):
        x = torch.randn(8, 4, generator=generator)
        return {"total": ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()}

    run_loop(run, settings, model, losses, lambda: torch_save_atomic(model.state_dict(), out / "weights.pt"),
             lambda _: None)
    return model


def test_a_resumed_run_follows_the_schedule_of_an_uninterrupted_one(tmp_path):
    whole = toy_training(tmp_path / "whole", 12)
    toy_training(tmp_path / "parts", 7)  # the last checkpoint at step 7 (the end of the run)
    parts = toy_training(tmp_path / "parts", 12, resume=True)
    log = read_log(tmp_path / "whole" / "train_log.jsonl")
    assert [r["lr"] for r in log] == pytest.approx([0.025] + [0.05] * 4 + [0.005] * 4 + [0.0005] * 3)
    def without_time(records):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in records]

    assert without_time(read_log(tmp_path / "parts" / "train_log.jsonl")) == without_time(log)
    for a, b in zip(whole.state_dict().values(), parts.state_dict().values()):
        assert torch.equal(a, b)


# -- epochs -----------------------------------------------------------------------------------------------------
def test_epochs_and_drop_epochs_turn_into_steps(tmp_path):
    from diffgrasp_ros.training.igd_train import BatchSizes, TrainOptions

    options = TrainOptions(tmp_path, tmp_path, batch=BatchSizes(scenes=4), accumulate=2, epochs=12,
                           lr_drop_epochs=(9, 11))
    assert options.steps_per_epoch(1000, processes=2) == 63  # ceil(1000 / (4 x 2 x 2))
    schedule = options.schedule(1000, processes=2)
    assert (schedule.max_steps, schedule.lr_drop_steps) == (12 * 63, (9 * 63, 11 * 63))
    drops_only = TrainOptions(tmp_path, tmp_path, max_steps=50, lr_drop_epochs=(3,)).schedule(10, processes=1)
    assert (drops_only.max_steps, drops_only.lr_drop_steps) == (50, (9,))  # ceil(10 / 4) = 3 steps an epoch


def test_each_dataset_has_its_own_grid_cache(tmp_path):
    from diffgrasp_ros.training.igd_train import dataset_caches

    # Cache files are named by chunk number, scene and seed, which two datasets may share.
    a, b = tmp_path / "a", tmp_path / "b"
    assert dataset_caches((a, b), None) == (a / "igd_grid_cache", b / "igd_grid_cache")
    assert dataset_caches((a, b), (tmp_path / "x", tmp_path / "y")) == (tmp_path / "x", tmp_path / "y")
    assert dataset_caches((a,), tmp_path / "x") == (tmp_path / "x",)


def test_the_cli_trains_epochs_with_drops_over_two_datasets(datasets, tmp_path, capsys):
    # 4 scenes (2 a dataset), 1 a batch: an epoch is 4 steps; 3 epochs, drop after the second.
    out = tmp_path / "run"
    assert main(train_args(datasets, out, "--epochs", "3", "--lr-drop-epochs", "2", "--lr", "1e-3")) == 0
    printed = capsys.readouterr().out
    assert "4 scenes" in printed and "an epoch is 4 steps; 3 epochs = 12 steps; learning rate x0.1 after steps [8]" \
        in printed
    log = read_log(out / "train_log.jsonl")
    assert [r["step"] for r in log] == list(range(1, 13))
    lrs = [r["lr"] for r in log]  # warm-up of 100 steps: (step + 1) / 100, then x0.1 from the update after step 8
    assert lrs == pytest.approx([1e-3 * s / 100 for s in range(1, 9)] + [1e-4 * s / 100 for s in range(9, 13)])
    assert main(train_args(datasets, tmp_path / "three", "--steps", "1", "--max-scenes", "3")) == 0
    assert "3 scenes" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--lr-drops", "5", "--lr-drop-epochs", "1"], "in steps (--lr-drops) or in epochs (--lr-drop-epochs), not both"),
    (["--lr-drops", "8", "4"], "--lr-drops must be positive and increasing, got [8, 4]"),
    (["--lr-drop-epochs", "0"], "--lr-drop-epochs must be positive and increasing, got [0]"),
    (["--epochs", "3", "--steps", "10"], "pass --epochs or --steps, not both"),
    (["--epochs", "12", "--lr-drop-epochs", "9", "12"], "every drop must come before the end of the run's 12 epochs"),
    (["--val-every", "5"], "--val-every and --val-batches need --val-data"),
    (["--cache", "one_cache"], "give one cache folder per dataset: 2 dataset(s)"),
])
def test_inconsistent_schedules_are_refused(datasets, tmp_path, capsys, extra, message):
    assert main(train_args(datasets, tmp_path / "run", *extra)) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# -- validation -------------------------------------------------------------------------------------------------
def test_validation_logs_fixed_batch_losses_without_changing_training(datasets, tmp_path):
    training, held_out = datasets
    plain, validated = tmp_path / "plain", tmp_path / "validated"
    assert main(train_args([training], plain, "--steps", "5")) == 0
    assert main(train_args([training], validated, "--steps", "4", "--checkpoint-every", "2", "--val-data",
                           str(held_out), "--val-every", "3", "--val-batches", "2")) == 0
    val = read_log(validated / "val_log.jsonl")
    assert [r["step"] for r in val] == [3, 4]  # every 3 steps and at the last
    assert all(set(r) == {"step", "seconds", *(f"val_{k}" for k in LOSSES)} for r in val)
    assert all(np.isfinite(r[f"val_{k}"]) for r in val for k in LOSSES)
    assert val[0]["val_total"] != val[1]["val_total"]  # the model changed in between

    # A line written after the last checkpoint (a run killed there) is dropped on resume, and written again.
    with open(validated / "val_log.jsonl", "a") as file:
        file.write(json.dumps({"step": 5, "seconds": 0.0, "val_total": -1.0}) + "\n")
    assert main(train_args([training], validated, "--steps", "6", "--resume", "--checkpoint-every", "2",
                           "--val-data", str(held_out), "--val-every", "3", "--val-batches", "2")) == 0
    resumed = read_log(validated / "val_log.jsonl")
    assert [r["step"] for r in resumed] == [3, 4, 6] and resumed[:2] == val

    # Validation draws nothing from the training streams: the same losses, bit for bit.
    losses = [{k: r[k] for k in LOSSES} for r in read_log(plain / "train_log.jsonl")]
    assert [{k: r[k] for k in LOSSES} for r in read_log(validated / "train_log.jsonl")][:5] == losses


def test_the_validation_batches_are_the_same_every_time(datasets):
    from diffgrasp_ros.grasping.igd.config import TINY, IGDConfig
    from diffgrasp_ros.grasping.igd.model import IGDModel
    from diffgrasp_ros.grasping.igd.scheduler import DDIMScheduler
    from diffgrasp_ros.training.igd_train import BatchSizes, GridCache, load_scenes, validation_losses

    scenes = load_scenes(datasets[0], GridCache(datasets[0] / "igd_grid_cache"), log=lambda _: None)
    model = IGDModel(IGDConfig(**TINY)).eval()
    sizes = BatchSizes(scenes=1, grasps=16, centres=16, diffusion=8, occupancy=32)
    with torch.no_grad():
        first = validation_losses(model, DDIMScheduler(model.config.train_steps), scenes, sizes, 3)()
        again = validation_losses(model, DDIMScheduler(model.config.train_steps), scenes, sizes, 3)
        assert again() == first == again()
        assert validation_losses(model, DDIMScheduler(model.config.train_steps), scenes, sizes, 2)() != first
    assert set(first) == set(LOSSES)


# -- validation data --------------------------------------------------------------------------------------------
def test_datagen_objects_split_chooses_held_out_objects(tmp_path, capsys):
    from diffgrasp_ros.cli.datagen import object_sets
    from diffgrasp_ros.sim.object_splits import training_objects, validation_objects

    kinds = ("pile", "packed")
    training = {kind: {m.name for m in training_objects(kind).objects} for kind in kinds}
    assert object_sets(kinds, None, "training") == {kind: training_objects(kind) for kind in kinds}
    for split in ("hash", "families"):
        chosen = object_sets(kinds, None, split)
        assert chosen == {kind: validation_objects(kind, split) for kind in kinds}
        for kind in kinds:  # the shared sets' split, or the builtin val/ without ../shared
            names = {m.name for m in chosen[kind].objects}
            assert names and not names & training[kind], (split, kind)
    with pytest.raises(SystemExit):
        main(["datagen", "--out", str(tmp_path / "d"), "--objects", str(tmp_path), "--objects-split", "hash"])
    assert "not allowed with argument" in capsys.readouterr().err
