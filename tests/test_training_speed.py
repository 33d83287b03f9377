"""CPU bf16 autocast of the cerebellum trainers and the paper trainers' schedule (batch 1, one pass per epoch)."""
import json
import subprocess
import sys

import pytest
import torch
from nnunet_helpers import nnunet_env, run_checked
from synthetic_data import write_toy_cerebellum_dataset

from nnunet_ataxia.architectures import M2InceptionUNet
from nnunet_ataxia.io.nnunet_env import SEED_VARIABLE
from nnunet_ataxia.trainers.cerebellum_trainers import paper_epoch_iterations
from nnunet_ataxia.trainers.cpu_speed import (
    BF16_VARIABLE,
    autocast_forward_bf16,
    cpu_flags,
    cpu_has_native_bf16,
    decide_cpu_bf16,
)

CPU = torch.device("cpu")


def test_bf16_is_on_by_default_only_with_native_support(tmp_path):
    assert decide_cpu_bf16(CPU, {}, {"avx2", "avx512_bf16"})[0] is True
    assert decide_cpu_bf16(CPU, {}, {"avx2", "amx_bf16"})[0] is True
    assert decide_cpu_bf16(CPU, {}, {"fp", "asimd", "bf16"})[0] is True  # aarch64 feature name
    on, reason = decide_cpu_bf16(CPU, {}, {"avx2", "avx512f"})
    assert on is False and "no native bf16" in reason
    # opt-out, opt-in, bad value, non-CPU device
    assert decide_cpu_bf16(CPU, {BF16_VARIABLE: "0"}, {"avx512_bf16"})[0] is False
    assert decide_cpu_bf16(CPU, {BF16_VARIABLE: "off"}, {"avx512_bf16"})[0] is False
    assert decide_cpu_bf16(CPU, {BF16_VARIABLE: "1"}, {"avx2"})[0] is True
    with pytest.raises(ValueError, match=BF16_VARIABLE):
        decide_cpu_bf16(CPU, {BF16_VARIABLE: "maybe"}, set())
    assert decide_cpu_bf16(torch.device("cuda"), {BF16_VARIABLE: "1"}, {"avx512_bf16"})[0] is False
    # /proc/cpuinfo parsing (x86 "flags", ARM "Features")
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu avx2\n")
    assert {"avx2", "avx512_bf16"} <= cpu_flags(info) and cpu_has_native_bf16(cpu_flags(info))
    info.write_text("Features\t: fp asimd\n")
    assert not cpu_has_native_bf16(cpu_flags(info))
    assert cpu_flags(tmp_path / "missing") == set()


def test_bf16_forward_runs_the_convolutions_in_bf16_and_returns_float32():
    torch.manual_seed(0)
    net = M2InceptionUNet(1, 3)
    reference = M2InceptionUNet(1, 3)
    reference.load_state_dict(net.state_dict())
    keys = list(net.state_dict())
    seen = []
    net.encoder[1].t2.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    autocast_forward_bf16(net)
    x = torch.randn(1, 1, 16, 16, 32)
    out = net(x)
    assert seen == [torch.bfloat16] and out.dtype == torch.float32
    assert list(net.state_dict()) == keys and all(p.dtype == torch.float32 for p in net.parameters())
    with torch.no_grad():
        expected = reference.eval()(x)
        got = net.eval()(x)
    assert (got - expected).abs().max() <= 0.05 * expected.abs().max()  # bf16 has 8 mantissa bits
    out.sum().backward()  # backward outside autocast works and gives float32 gradients
    assert all(p.grad.dtype == torch.float32 for p in net.parameters())


def test_paper_epoch_is_one_pass():
    assert paper_epoch_iterations(18, 11, 1) == 198  # Data1: 18 training images, each + 10 augmented copies
    assert paper_epoch_iterations(18, 1, 1) == 18
    assert paper_epoch_iterations(5, 11, 2) == 28


TRAINER_PROBE = r"""
import json, sys, torch
from torch import nn
from nnunetv2.run.run_training import get_trainer_from_args
out = {}
for name in sys.argv[1].split(","):
    t = get_trainer_from_args("991", "3d_fullres", 0, name, "nnUNetFixed128Plans", device=torch.device("cpu"))
    if len(sys.argv) > 2:  # a smaller patch (emulated bf16 is slow on CPUs without native support)
        t.configuration_manager.configuration["patch_size"] = json.loads(sys.argv[2])
    t.on_train_start()
    seen = []
    conv = [m for m in t.network.modules() if isinstance(m, nn.ConvTranspose3d)][0]  # called as a module
    conv.register_forward_hook(lambda m, i, o: seen.append(str(o.dtype)))
    batch = next(t.dataloader_train)
    loss = t.train_step(batch)["loss"]
    out[name] = dict(iterations=t.num_iterations_per_epoch, val_iterations=t.num_val_iterations_per_epoch,
                     epochs=t.num_epochs, batch_size=t.batch_size, tta=t.inference_allowed_mirroring_axes,
                     batch_shape=list(batch["data"].shape),
                     dropout=type(t.network.dropout).__name__, bf16=t.cpu_bf16, conv_dtypes=seen,
                     loss_finite=bool(abs(float(loss)) < 1e9), loss=float(loss),
                     batch_sum=float(batch["data"].double().sum()),
                     weights_sum=float(sum(p.detach().double().sum() for p in t.network.parameters())),
                     best_of_last=t.schedule.best_of_last_epochs if t.schedule is not None else None)
    lrs = []
    for epoch in (0, t.num_epochs // 2, t.num_epochs - 1):  # nnU-Net steps the scheduler at every epoch start
        t.lr_scheduler.step(epoch)
        lrs.append(t.optimizer.param_groups[0]["lr"])
    out[name]["lrs"] = lrs
    t.dataloader_train._finish() if hasattr(t.dataloader_train, "_finish") else None
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def planned_toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("speed")
    env = nnunet_env(root, OMP_NUM_THREADS="1")
    write_toy_cerebellum_dataset(root / "nnUNet_raw", 991, n_cases=5, seed=3)
    run_checked(["nnunet-ataxia", "plan", "-d", "991", "-np", "1"], env)
    return env


def _probe(env, trainers, patch=None, **extra):
    args = [",".join(trainers)] + ([json.dumps(patch)] if patch else [])
    result = subprocess.run([sys.executable, "-c", TRAINER_PROBE, *args], capture_output=True, text=True,
                            env=dict(env, **extra))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.split("RESULT")[-1])


@pytest.mark.slow
@pytest.mark.e2e
def test_paper_trainers_use_batch_1_one_pass_epochs_and_the_papers_dropout(planned_toy):
    # 5 cases, nnU-Net's 5-fold split: fold 0 trains on 4 and validates on 1
    got = _probe(planned_toy, ["M1Trainer_paperWDA", "M1Trainer_paperNDA", "M1Trainer", "M1Trainer_paperNDA_smoke",
                               "M2InceptionTrainer_paperWDA_demo"], **{BF16_VARIABLE: "0"})
    wda, nda, nnunet = got["M1Trainer_paperWDA"], got["M1Trainer_paperNDA"], got["M1Trainer"]
    assert (wda["epochs"], wda["iterations"], wda["val_iterations"], wda["batch_size"]) == (200, 4 * 11, 1, 1)
    assert (nda["epochs"], nda["iterations"], nda["val_iterations"], nda["batch_size"]) == (200, 4, 1, 1)
    # a schedule (trainers.schedules) replaces the recipe's run length and batch, and switches test-time mirroring off
    smoke, demo = got["M1Trainer_paperNDA_smoke"], got["M2InceptionTrainer_paperWDA_demo"]
    assert (smoke["epochs"], smoke["iterations"], smoke["val_iterations"], smoke["batch_size"]) == (1, 2, 1, 1)
    # the demo: 30 epochs x 8 iterations of batch 2 = 240 iterations (3x the 80 of the earlier schedule)
    assert (demo["epochs"], demo["iterations"], demo["val_iterations"], demo["batch_size"]) == (30, 8, 2, 2)
    # the paper's Adam keeps its default learning rate (a schedule changes the run length, not the rate); nnU-Net's
    # recipe decays its SGD rate (poly)
    assert wda["lrs"] == nda["lrs"] == demo["lrs"] == [1e-3] * 3
    assert nnunet["lrs"][0] == 1e-2 and nnunet["lrs"][-1] < 1e-3
    assert demo["batch_shape"] == [2, 1, 96, 128, 128] and demo["dropout"] == "Dropout"
    assert smoke["tta"] is None and demo["tta"] is None and nnunet["tta"] == [0, 1, 2]
    assert demo["best_of_last"] == 10 and smoke["best_of_last"] is None
    assert wda["batch_shape"] == [1, 1, 96, 128, 128]
    assert wda["dropout"] == nda["dropout"] == "Dropout"  # element-wise, after the output layer
    # nnU-Net's recipe is untouched: 250 iterations of the plans' batch 2, dropout before the output layer
    assert (nnunet["iterations"], nnunet["batch_size"], nnunet["dropout"]) == (250, 2, "Dropout3d")
    assert all(r["conv_dtypes"] == ["torch.float32"] and r["loss_finite"] for r in got.values())


@pytest.mark.slow
@pytest.mark.e2e
def test_bf16_opt_in_autocasts_the_training_step(planned_toy):
    got = _probe(planned_toy, ["M1Trainer_paperNDA_smoke"], [32, 32, 32],
                 **{BF16_VARIABLE: "1"})["M1Trainer_paperNDA_smoke"]
    assert got["bf16"] is True and got["batch_shape"] == [1, 1, 32, 32, 32]
    assert got["conv_dtypes"] == ["torch.bfloat16"] and got["loss_finite"]
    assert (got["iterations"], got["batch_size"]) == (2, 1)  # the smoke schedule keeps its 2 iterations


@pytest.mark.slow
@pytest.mark.e2e
def test_the_seed_variable_makes_a_training_step_repeatable(planned_toy):
    def step(seed):  # network initialization, patch sampling, the paper's augmentation, one optimizer step
        return _probe(planned_toy, ["M1Trainer_paperWDA"], [32, 32, 32],
                      **{BF16_VARIABLE: "0", SEED_VARIABLE: seed})["M1Trainer_paperWDA"]

    first, again, other = step("7"), step("7"), step("8")
    for key in ("batch_sum", "loss", "weights_sum"):
        assert first[key] == again[key], key
        assert first[key] != other[key], key


def test_augmentation_resamples_image_and_segmentation_through_one_shared_grid():
    import torch.nn.functional as F

    from nnunet_ataxia.trainers.paper_augmentation import RandomAxisRotationShiftTransform

    torch.manual_seed(0)
    image, seg = torch.rand(1, 12, 16, 20), torch.randint(0, 3, (1, 12, 16, 20)).to(torch.int16)
    t = RandomAxisRotationShiftTransform()
    params = t.get_parameters(image=image)
    out_image = t._apply_to_image(image, **params)
    out_seg = t._apply_to_segmentation(seg, **params)
    # the same as resampling each with its own grid from the composed affine map
    grid = F.affine_grid(params["theta"][None].float(), [1, 1, 12, 16, 20], align_corners=True)
    # voxels from outside the patch take the background (the patch's minimum, per channel)
    fill = image.reshape(image.shape[0], -1).amin(1).reshape(-1, 1, 1, 1)
    expected_image = F.grid_sample(image[None] - fill, grid, mode="bilinear", align_corners=True)[0] + fill
    expected_seg = F.grid_sample(seg[None].float(), grid, mode="nearest", align_corners=True)[0].to(torch.int16)
    assert torch.equal(out_image, expected_image) and torch.equal(out_seg, expected_seg)
    assert out_seg.dtype == torch.int16 and set(out_seg.unique().tolist()) <= {0, 1, 2}


BEST_OF_LAST_PROBE = r"""
import json, os, torch
from nnunetv2.run.run_training import get_trainer_from_args
from nnunet_ataxia.trainers.schedules import TrainingSchedule
t = get_trainer_from_args("991", "3d_fullres", 0, "M1Trainer_paperNDA", "nnUNetFixed128Plans",
                          device=torch.device("cpu"))
t.schedule = TrainingSchedule(num_epochs=4, iterations_per_epoch=1, val_iterations_per_epoch=1, batch_size=1,
                              best_of_last_epochs=3)
t.configuration_manager.configuration["patch_size"] = [32, 32, 32]
dice = [0.9, 0.5, 0.8, 0.6]  # the validation pseudo-Dice each epoch reports: epoch 2 is the best of the last 3
validation_end, epoch_end, weights = t.on_validation_epoch_end, t.on_epoch_end, []

def fixed_dice(outputs):
    validation_end(outputs)
    t.logger.get_value("mean_fg_dice", step=None)[-1] = dice[t.current_epoch]  # the list itself

def record_weights():
    weights.append({k: v.clone() for k, v in t.network.state_dict().items()})
    epoch_end()

t.on_validation_epoch_end, t.on_epoch_end = fixed_dice, record_weights
t.run_training()
saved = {name: torch.load(os.path.join(t.output_folder, name), weights_only=False)["network_weights"]
         for name in ("checkpoint_best.pth", "checkpoint_final.pth")}
same = {name: [all(torch.equal(w[k], s[k]) for k in s) for w in weights] for name, s in saved.items()}
print("RESULT" + json.dumps(dict(same=same, log=open(t.log_file).read())))
"""


@pytest.mark.slow
@pytest.mark.e2e
def test_a_schedule_keeps_the_best_of_its_last_epochs_as_checkpoint_best(planned_toy):
    result = subprocess.run([sys.executable, "-c", BEST_OF_LAST_PROBE], capture_output=True, text=True,
                            env=dict(planned_toy, **{BF16_VARIABLE: "0"}))
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.split("RESULT")[-1])
    # epoch 0 (0.9) is outside the window of the last 3; epoch 2 (0.8) is the best inside it
    assert got["same"]["checkpoint_best.pth"] == [False, False, True, False]
    assert got["same"]["checkpoint_final.pth"] == [False, False, False, True]  # the final stays the last epoch
    assert got["log"].count("new best validation pseudo Dice of the last 3 epochs") == 2  # epochs 1 and 2
    assert "New best EMA" not in got["log"]  # nnU-Net's moving-average choice is off
