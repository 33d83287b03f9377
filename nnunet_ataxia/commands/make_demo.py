"""``nnunet-ataxia make-demo``: demo subjects from real MNI anatomy (Hammers and SCA2 layouts), no download."""
from __future__ import annotations

import argparse

from nnunet_ataxia.io.arguments import nonnegative_int, positive_float, positive_int
from nnunet_ataxia.io.output_folders import add_overwrite_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", help="output folder (new, empty, or an earlier make-demo output); gets hammers/ "
                                        "(Hammers n30r95 layout) and sca2/ (BIDS-like SCA2 layout with ACAPULCO "
                                        "outputs)")
    parser.add_argument("--n-hammers", type=int, default=6, help="subjects in the Hammers layout (default 6)")
    parser.add_argument("--n-sca2", type=int, default=6,
                        help="subjects in the SCA2 layout: control, presymptomatic, sca2 in turn (default 6)")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", "--voxel-size", dest="voxel_size", type=positive_float, default=2.0,
                        help="isotropic voxel size in mm (default 2; 1 = full template resolution)")
    parser.add_argument("--no-manual-masks", action="store_true",
                        help="do not write manually corrected masks (the converter then uses ACAPULCO's union)")
    parser.add_argument("-np", "--num-processes", type=positive_int, default=1, help="subjects generated in parallel")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from nnunet_ataxia.demo.layouts import make_demo
    from nnunet_ataxia.errors import InputError

    if args.n_hammers < 0 or args.n_sca2 < 0 or args.n_hammers + args.n_sca2 == 0:
        raise InputError("--n-hammers/--n-sca2: need at least one subject and no negative count")
    if not 0.5 <= args.voxel_size <= 8:
        raise InputError(f"--size: voxel size {args.voxel_size} mm out of range (0.5 to 8)")
    out = make_demo(args.out_dir, args.n_hammers, args.n_sca2, args.seed, args.voxel_size,
                    not args.no_manual_masks, args.num_processes, overwrite=args.overwrite)
    print(f"wrote {out}/hammers and {out}/sca2")
    return 0
