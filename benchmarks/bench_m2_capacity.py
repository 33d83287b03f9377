"""How closely can M2 fit a few real-anatomy subjects at all? Training Dice on a fixed handful of cases.

The pretrained model's training loss stays about equal to its validation loss (it under-fits), so the question for
the held-out targets is whether M2 (550,097 parameters, 16 channels at full resolution) can draw a real label map's
cerebellar boundary at all. This benchmark renders ``--cases`` T1-like training cases from the *training* label maps
(``make_registered_label_map_case``: the 128 × 128 × 96 MNI crop as the preprocessing leaves it; seeds 910000 + i,
which no training run uses) and ``--heldout`` cases from the held-out maps (seeds 920000 + i), and trains M2 on the
training cases only, without augmentation: Adam (``--lr``), nnU-Net's Dice + cross-entropy loss, batch 1, z-score
normalization as the plans do, dropout ``--dropout`` (0.2 as trained; 0 to see the network's capacity alone).
Every ``--eval-every`` iterations it prints the hard Dice (network in eval mode) of cerebellum and brainstem on the
fitted cases and on the held-out ones. Dice on subjects the network has seen hundreds of times is an upper bound
of what the same training reaches on unseen ones.

    python benchmarks/bench_m2_capacity.py --label-maps DIR [--checkpoint release/model_v2_candidate.zip] \\
        [--cases 4] [--heldout 2] [--iterations 1200] [--eval-every 100] [--lr 3e-4] [--dropout 0.2] \\
        [--threads 2] [--out capacity.csv]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

TRAIN_SEED_OFFSET = 910000
HELDOUT_SEED_OFFSET = 920000
STRUCTURES = {1: "cerebellum", 2: "brainstem"}


def render_cases(maps: list, n: int, seed_offset: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` T1-like cases, one map after the other: (z-scored image [1,1,Z,Y,X], labels [1,1,Z,Y,X])."""
    import SimpleITK as sitk

    from nnunet_ataxia.synthesis.label_map_subjects import make_registered_label_map_case, map_to_mni_registration

    cases = []
    for i in range(n):
        label_map = maps[i % len(maps)]
        image, labels, _ = make_registered_label_map_case(label_map, map_to_mni_registration(label_map),
                                                          seed_offset + i, random_contrast_probability=0.0)
        arr = sitk.GetArrayFromImage(image).astype(np.float32)
        arr = (arr - arr.mean()) / max(float(arr.std()), 1e-8)   # nnU-Net's ZScoreNormalization, no mask
        cases.append((torch.from_numpy(arr)[None, None],
                      torch.from_numpy(sitk.GetArrayFromImage(labels).astype(np.int64))[None, None]))
    return cases


def load_network_weights(path: str) -> dict:
    """The network weights of an nnU-Net checkpoint, or of the ``fold_0/checkpoint_final.pth`` in an exported zip
    (read as ``train-pretrained --initial-weights`` reads it)."""
    from nnunet_ataxia.errors import InputError
    from nnunet_ataxia.pretrained.release import start_checkpoint

    try:
        with start_checkpoint(path) as checkpoint:   # a checkpoint extracted from a zip is removed afterwards
            return torch.load(checkpoint, map_location="cpu", weights_only=False)["network_weights"]
    except InputError as e:
        raise SystemExit(f"error: {e}") from None


def dice_per_structure(network: torch.nn.Module, cases: list) -> dict[str, float]:
    """Mean hard Dice per structure over ``cases`` (network in eval mode)."""
    network.eval()
    scores = {name: [] for name in STRUCTURES.values()}
    with torch.no_grad():
        for image, labels in cases:
            prediction = network(image).argmax(1)
            for value, name in STRUCTURES.items():
                p, g = prediction == value, labels[:, 0] == value
                scores[name].append(2 * (p & g).sum().item() / max(p.sum().item() + g.sum().item(), 1))
    network.train()
    return {name: float(np.mean(v)) for name, v in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--label-maps", required=True)
    parser.add_argument("--checkpoint", help="start from this nnU-Net checkpoint, or an exported model zip's fold 0 "
                                             "(default: random weights)")
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--heldout", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=1200)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--dropout", type=float, default=0.2, help="M2's dropout (0.2: as the pretrained model)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args()

    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    from nnunet_ataxia.architectures import M2InceptionUNet
    from nnunet_ataxia.architectures.common import upgrade_output_keys
    from nnunet_ataxia.synthesis.label_map_subjects import list_label_maps

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_maps, heldout_maps = list_label_maps(args.label_maps)
    t0 = time.time()
    fitted = render_cases(train_maps, args.cases, TRAIN_SEED_OFFSET)
    unseen = render_cases(heldout_maps, args.heldout, HELDOUT_SEED_OFFSET)
    print(f"rendered {len(fitted)} training and {len(unseen)} held-out cases in {time.time() - t0:.0f} s", flush=True)

    network = M2InceptionUNet(input_channels=1, num_classes=3, dropout=args.dropout)
    if args.checkpoint:
        network.load_state_dict(upgrade_output_keys(load_network_weights(args.checkpoint)))
    network.train()
    loss_fn = DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                             weight_ce=1, weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    optimizer = torch.optim.Adam(network.parameters(), lr=args.lr)
    order = np.random.RandomState(args.seed)

    rows, losses = [], []
    t0 = time.time()
    for iteration in range(args.iterations + 1):
        if iteration % args.eval_every == 0:
            row = {"iteration": iteration, "seconds": round(time.time() - t0, 1),
                   "train_loss": round(float(np.mean(losses)), 4) if losses else float("nan")}
            row.update({f"fitted_{k}_dice": round(v, 4) for k, v in dice_per_structure(network, fitted).items()})
            row.update({f"heldout_{k}_dice": round(v, 4) for k, v in dice_per_structure(network, unseen).items()})
            rows.append(row)
            losses = []
            print("  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
            if args.out:
                pd.DataFrame(rows).to_csv(args.out, index=False)
        if iteration == args.iterations:
            break
        image, labels = fitted[order.randint(len(fitted))]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(network(image), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())


if __name__ == "__main__":
    main()
