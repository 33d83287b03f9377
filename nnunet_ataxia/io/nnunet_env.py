"""Small helpers around nnU-Net's environment variables and dataset names, with clear errors."""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from nnunet_ataxia.errors import InputError

NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def trainer_shim_folder() -> Path:
    """The folder that ``nnUNet_extTrainer`` must name so nnU-Net finds this plugin's trainers.

    Example:
        >>> trainer_shim_folder().name
        'nnunet_ext_trainers'
    """
    return Path(__file__).resolve().parent.parent / "nnunet_ext_trainers"


def ext_trainer_path(current: str | None = None) -> str:
    """A value for ``nnUNet_extTrainer`` that names this plugin's trainers first and keeps the user's own folders.

    Args:
        current: the variable's present value (default: ``os.environ``); nnU-Net searches every folder of the
            ``os.pathsep``-separated list.

    Example:
        >>> ext_trainer_path("/my/trainers").split(os.pathsep) == [str(trainer_shim_folder()), "/my/trainers"]
        True
    """
    shim = str(trainer_shim_folder())
    current = os.environ.get("nnUNet_extTrainer", "") if current is None else current
    return os.pathsep.join([shim] + [f for f in current.split(os.pathsep) if f and f != shim])


#: environment variable read by this plugin's trainers: seed the random generators (a repeatable run on a CPU)
SEED_VARIABLE = "NNUNET_ATAXIA_SEED"


def nnunet_subprocess_env(root: str | os.PathLike, num_processes: int = 1,
                          seed: int | None = None) -> dict[str, str]:
    """The environment for nnU-Net commands run as subprocesses on ``root/nnUNet_{raw,preprocessed,results}``.

    The three folders are created; ``nnUNet_extTrainer`` names this plugin's trainers; data augmentation runs in the
    main process (``nnUNet_n_proc_DA=0``: no worker processes fighting over 2 cores), ``torch.compile`` is off and
    matplotlib draws without a display.

    Args:
        root: the folder that holds (or will hold) the three nnU-Net folders.
        num_processes: ``nnUNet_def_n_proc`` (planning/preprocessing processes).
        seed: if given, :data:`SEED_VARIABLE`: this plugin's trainers seed their random generators with it.

    Example:
        >>> import tempfile
        >>> env = nnunet_subprocess_env(tempfile.mkdtemp())
        >>> env["nnUNet_extTrainer"] == str(trainer_shim_folder()), Path(env["nnUNet_results"]).is_dir()
        (True, True)
    """
    root = Path(root).resolve()
    env = dict(os.environ, nnUNet_extTrainer=str(trainer_shim_folder()), nnUNet_n_proc_DA="0",
               nnUNet_def_n_proc=str(max(1, int(num_processes))), nnUNet_compile="false", MPLBACKEND="Agg")
    for key in NNUNET_FOLDERS:
        env[key] = str(root / key)
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    if seed is not None:
        env[SEED_VARIABLE] = str(int(seed))
    return env


def nnunet_folder(variable: str) -> Path:
    """The folder in the nnU-Net environment variable ``variable`` (``nnUNet_raw``, ...), or a clear error.

    Example:
        >>> nnunet_folder("nnUNet_raw")  # doctest: +SKIP
        PosixPath('/data/nnUNet_raw')
    """
    value = os.environ.get(variable)
    if not value:
        raise InputError(f"environment variable {variable} is not set: nnU-Net needs nnUNet_raw, "
                         f"nnUNet_preprocessed and nnUNet_results (see docs/getting-started.md, 'nnU-Net environment')")
    return Path(value)


def dataset_name(dataset: str | int) -> str:
    """The ``DatasetXXX_Name`` that nnU-Net's commands use for an id or a name: nnU-Net's own
    ``maybe_convert_to_dataset_name`` (an id is looked up in nnUNet_raw, nnUNet_preprocessed and nnUNet_results, and
    must name one dataset there), its errors turned into one :class:`InputError` line.

    Example:
        >>> dataset_name("Dataset501_HammersN30R95")
        'Dataset501_HammersN30R95'
    """
    from nnunetv2.utilities.dataset_name_id_conversion import find_candidate_datasets, maybe_convert_to_dataset_name
    text = str(dataset).strip()
    try:
        return str(maybe_convert_to_dataset_name(text))
    except ValueError:
        raise InputError(f"dataset '{text}': give a numeric id (e.g. 501) or a name like Dataset501_Hammers") from None
    except RuntimeError:
        found = [str(c) for c in find_candidate_datasets(int(text))]
        where = ", ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in ("nnUNet_raw", "nnUNet_preprocessed",
                                                                          "nnUNet_results"))
        if found:
            raise InputError(f"dataset '{text}': several datasets share this id ({', '.join(found)}) in {where}; "
                             f"rename or remove all but one") from None
        raise InputError(f"dataset '{text}': no such dataset in {where}") from None


def resolve_raw_dataset(dataset: str | int) -> tuple[str, Path]:
    """Find ``DatasetXXX_Name`` in ``$nnUNet_raw`` from an id or name (:func:`dataset_name`); check that its
    dataset.json exists.

    Args:
        dataset: an integer id (``501``), its string form, or the full name.

    Returns:
        The dataset name and its raw folder.

    Example:
        >>> resolve_raw_dataset(501)  # doctest: +SKIP
        ('Dataset501_HammersN30R95', PosixPath('/data/nnUNet_raw/Dataset501_HammersN30R95'))
    """
    raw = nnunet_folder("nnUNet_raw")
    folder = raw / dataset_name(dataset)
    if not folder.is_dir():
        raise InputError(f"dataset '{dataset}': no such dataset in nnUNet_raw ({raw}; {folder.name} is not there)")
    if not (folder / "dataset.json").is_file():
        raise InputError(f"{folder / 'dataset.json'}: missing; every nnU-Net raw dataset needs a dataset.json")
    from nnunet_ataxia.io.files import read_json

    dj = read_json(folder / "dataset.json", "dataset.json")
    missing = [k for k in ("labels", "channel_names", "file_ending") if k not in dj]
    if missing:
        raise InputError(f"{folder / 'dataset.json'}: not an nnU-Net v2 dataset.json (no {', '.join(missing)})")
    return folder.name, folder


def raw_dataset_files(raw_folder: str | os.PathLike) -> dict:
    """nnU-Net's own listing of a raw dataset's training cases (``get_filenames_of_train_images_and_targets``), with
    the file names matched in threads instead of nnU-Net's forked pool
    (:func:`~nnunet_ataxia.io.parallel.nnunet_file_listing_in_threads`).

    Args:
        raw_folder: the ``DatasetXXX_Name`` folder (with ``dataset.json``).

    Returns:
        ``{case: {"images": [...], "label": path}}`` as nnU-Net returns it.

    Example:
        >>> raw_dataset_files("/data/nnUNet_raw/Dataset504_WMH")["c01"]["label"]  # doctest: +SKIP
        '/data/nnUNet_raw/Dataset504_WMH/labelsTr/c01.nii.gz'
    """
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    from nnunet_ataxia.io.files import read_json
    from nnunet_ataxia.io.parallel import nnunet_file_listing_in_threads

    nnunet_file_listing_in_threads()
    raw_folder = Path(raw_folder)
    return get_filenames_of_train_images_and_targets(str(raw_folder), read_json(raw_folder / "dataset.json",
                                                                                  "dataset.json"))


def _merge_into(staged: Path, final: Path) -> None:
    """Move every top-level item of ``staged`` into ``final``, replacing same-named items one by one (each
    replacement is a rename); items of ``final`` that ``staged`` does not have are kept."""
    import shutil

    final.mkdir(parents=True, exist_ok=True)
    for item in sorted(staged.iterdir()):
        target = final / item.name
        if target.is_dir() and not target.is_symlink():
            old = final / f".{item.name}.old-{os.getpid()}"
            os.replace(target, old)
            os.replace(item, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(item, target)


@contextmanager
def staged_preprocessed_dataset(dataset_name: str, reuse: Sequence[str] = ()) -> Iterator[Path]:
    """Let nnU-Net write one dataset's ``nnUNet_preprocessed`` folder into a staging folder, merged on success.

    The block gets the staging folder ``<staging root>/<dataset_name>`` (a hidden folder next to the real dataset
    folder), seeded with copies of the ``reuse`` files of the real folder (e.g. the fingerprint); run nnU-Net in a
    child process whose ``nnUNet_preprocessed`` is the staging root (``staged.parent``); this process's environment
    and nnU-Net's imported modules are left alone. When the block succeeds, the staged items replace their
    namesakes in ``$nnUNet_preprocessed/<dataset_name>`` (other items there, e.g. other plans or nnU-Net's own
    ``splits_final.json``, are kept); on an error or Ctrl-C the staging root is deleted and the real folder is
    exactly as before.

    Args:
        dataset_name: ``DatasetXXX_Name``.
        reuse: file names copied from the real dataset folder into the staging folder first.

    Example:
        >>> with staged_preprocessed_dataset("Dataset501_Hammers", ["dataset_fingerprint.json"]) as staged:
        ...     env = dict(os.environ, nnUNet_preprocessed=str(staged.parent))  # doctest: +SKIP
    """
    import shutil
    import tempfile

    root = nnunet_folder("nnUNet_preprocessed")
    final = root / dataset_name
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging_root = Path(tempfile.mkdtemp(prefix=f".{dataset_name}.staging-", dir=root))
    except OSError as e:
        raise InputError(f"{final}: cannot write the preprocessed dataset ({e.strerror or e})") from None
    try:
        staged = staging_root / dataset_name
        staged.mkdir()
        for name in reuse:
            if (final / name).is_file():
                shutil.copy2(final / name, staged / name)
        try:
            yield staged
        except KeyboardInterrupt as e:
            if e.args:
                raise
            raise KeyboardInterrupt(f"{final}: interrupted; nnU-Net's partial output was discarded and the folder is "
                                    f"left as it was") from None
        _merge_into(staged, final)
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)


def check_raw_dataset_images(raw_folder: str | os.PathLike) -> int:
    """Check every training/test image of an nnU-Net raw dataset with the shared input rules.

    Every channel must be readable and finite (NaN/Inf included, which nnU-Net's SimpleITK reader would silently
    turn into 0); channels that nnU-Net normalizes (all but ``noNorm``) must not be constant.

    Returns:
        The number of image files checked.

    Example:
        >>> check_raw_dataset_images("/data/nnUNet_raw/Dataset501_HammersN30R95")  # doctest: +SKIP
        30
    """
    import SimpleITK as sitk

    from nnunet_ataxia.io.files import read_json
    from nnunet_ataxia.io.images import check_intensity_image, read_image

    folder = Path(raw_folder)
    dj = read_json(folder / "dataset.json", "dataset.json")
    ending = str(dj.get("file_ending", ".nii.gz"))
    names = {str(k): str(v) for k, v in dict(dj.get("channel_names") or dj.get("modality") or {}).items()}
    n = 0
    for sub in ("imagesTr", "imagesTs"):
        for path in sorted((folder / sub).glob(f"*{ending}")) if (folder / sub).is_dir() else []:
            channel = path.name[: -len(ending)].rsplit("_", 1)[-1].lstrip("0") or "0"
            image = read_image(path, what="image")
            if names.get(channel, "").lower() != "nonorm":
                check_intensity_image(sitk.GetArrayViewFromImage(image), path, f"image (channel {channel})")
            n += 1
    return n
