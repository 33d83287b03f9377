"""BIDS in and out for ``segment``: the T1w images of a BIDS dataset, and a BIDS-derivatives dataset of the results.

Input: a folder with ``dataset_description.json`` is a BIDS dataset root; its T1w images are
``sub-<label>/[ses-<label>/]anat/sub-<label>[_ses-<label>]_..._T1w.nii[.gz]``, selected with BIDS Apps'
``--participant-label`` / ``--session-label`` (with or without the ``sub-`` / ``ses-`` prefix). The case id of an
image is its file name without the ending (``sub-01_ses-1_T1w``), so a case folder never takes the name of a BIDS
subject folder.

Output (:func:`write_derivatives`), next to ``segment``'s usual outputs, for every subject done, named after its T1w
file with ``_T1w`` replaced (``<prefix>`` = ``sub-01_ses-1[_acq-..._run-...]``)::

    dataset_description.json                 DatasetType derivative, GeneratedBy: nnunet-ataxia, version, model
    .bidsignore                              segment's own files (volumes.csv, qc/, the case folders, ...)
    sub-01/ses-1/anat/<prefix>_dseg.nii.gz   the label map on the T1w grid (+ .json sidecar)
    sub-01/ses-1/anat/<prefix>_dseg.tsv      its look-up table: index, name
    sub-01/ses-1/anat/<prefix>_label-cerebellum_mask.nii.gz    one binary mask per structure (+ .json sidecar)
    sub-01/ses-1/anat/<prefix>_volumes.tsv   the subject's row of volumes.csv (participant_id, session_id first)
    sub-01/figures/<prefix>_dseg.png         the QC picture

Images are hard links to the files in the case folder where the file system allows (copies otherwise).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_ataxia.errors import InputError
from nnunet_ataxia.io.cases import strip_ending

__all__ = ["BIDS_DESCRIPTION", "BIDS_IGNORE", "BidsImage", "bids_groups", "clean_labels", "find_bids_images",
           "is_bids_input", "write_derivatives"]

BIDS_DESCRIPTION = "dataset_description.json"
BIDS_VERSION = "1.10.0"
#: what the BIDS validator must not read: segment's own outputs in the same folder (``.bidsignore`` lines)
BIDS_IGNORE = ("/volumes.csv", "/qc", "/sub-*_T1w", "/segment_part.json", "/sub-*/figures", "*_volumes.tsv")
_LABEL = re.compile(r"^[A-Za-z0-9]+$")
_T1W_ENDINGS = (".nii.gz", ".nii")


@dataclass(frozen=True)
class BidsImage:
    """One T1w image of a BIDS dataset.

    Attributes:
        case: the case id: the file name without its ending (``sub-01_ses-1_T1w``).
        path: the file.
        subject: the participant label (``01``).
        session: the session label, or None.
        relative: the file's path relative to the dataset root (POSIX).
    """
    case: str
    path: Path
    subject: str
    session: str | None
    relative: str

    @property
    def prefix(self) -> str:
        """The file's entities without the ``_T1w`` suffix (``sub-01_ses-1``)."""
        return self.case[: -len("_T1w")]

    @property
    def anat(self) -> Path:
        """The derivative ``anat`` folder, relative to the dataset root."""
        return Path(f"sub-{self.subject}") / (f"ses-{self.session}" if self.session else "") / "anat"


def clean_labels(labels: Sequence[str] | None, prefix: str, option: str) -> list[str] | None:
    """Participant or session labels without their ``sub-`` / ``ses-`` prefix (BIDS Apps accept both forms).

    Args:
        labels: the labels given, or None.
        prefix: ``"sub-"`` or ``"ses-"``.
        option: the option's name, for the message.

    Raises:
        InputError: a label that is not alphanumeric.

    Example:
        >>> clean_labels(["sub-01", "02"], "sub-", "--participant-label")
        ['01', '02']
    """
    if not labels:
        return None
    out = []
    for label in labels:
        value = label[len(prefix):] if label.startswith(prefix) else label
        if not _LABEL.match(value):
            raise InputError(f"{option} {label}: a BIDS label is letters and digits only (e.g. 01 or {prefix}01)")
        out.append(value)
    return sorted(set(out))


def is_bids_input(source: str | os.PathLike, participant_labels: Sequence[str] | None = None,
                  session_labels: Sequence[str] | None = None) -> bool:
    """True when ``source`` is a BIDS dataset root (a folder with ``dataset_description.json``).

    Raises:
        InputError: labels were given for something that is not a BIDS dataset root, or a folder has ``sub-*``
            folders but no images and no ``dataset_description.json``.

    Example:
        >>> is_bids_input("t1_folder")  # doctest: +SKIP
        False
    """
    source = Path(source)
    if source.is_dir() and (source / BIDS_DESCRIPTION).is_file():
        return True
    if participant_labels or session_labels:
        raise InputError(f"{source}: not a BIDS dataset root (no {BIDS_DESCRIPTION}); --participant-label and "
                         f"--session-label need one")
    if source.is_dir():
        entries = [p for p in source.iterdir() if not p.name.startswith(".")]
        if any(p.is_dir() and p.name.startswith("sub-") for p in entries) and \
                not any(p.is_file() and strip_ending(p.name) is not None for p in entries):
            raise InputError(f"{source}: has sub-* folders but no {BIDS_DESCRIPTION}: not a BIDS dataset root (add "
                             f"the file, or give a folder of T1 images)")
    return False


def _labelled(folder: Path, prefix: str) -> dict[str, Path]:
    return {p.name[len(prefix):]: p for p in sorted(folder.glob(f"{prefix}*"))
            if p.is_dir() and _LABEL.match(p.name[len(prefix):])}


def find_bids_images(root: str | os.PathLike, participant_labels: Sequence[str] | None = None,
                     session_labels: Sequence[str] | None = None) -> list[BidsImage]:
    """The T1w images of a BIDS dataset, sorted by case id (optionally only some participants and sessions).

    Args:
        root: the dataset root (with ``dataset_description.json``).
        participant_labels: participant labels (``01`` or ``sub-01``); None: every participant.
        session_labels: session labels (``1`` or ``ses-1``); None: every session (and images outside sessions).

    Raises:
        InputError: not a BIDS dataset root, an unknown participant or session, a T1w file named unlike its
            folders, two files of one case, or no T1w image at all.

    Example:
        >>> [i.case for i in find_bids_images("bids", ["01"])]  # doctest: +SKIP
        ['sub-01_ses-1_T1w', 'sub-01_ses-2_T1w']
    """
    root = Path(root)
    if not (root / BIDS_DESCRIPTION).is_file():
        raise InputError(f"{root}: not a BIDS dataset root (no {BIDS_DESCRIPTION})")
    participants = clean_labels(participant_labels, "sub-", "--participant-label")
    sessions = clean_labels(session_labels, "ses-", "--session-label")
    subjects = _labelled(root, "sub-")
    for label in participants or []:
        if label not in subjects:
            known = ", ".join(f"sub-{s}" for s in list(subjects)[:5]) or "none"
            raise InputError(f"{root}: no participant sub-{label} in this dataset (participants: {known}"
                             f"{', ...' if len(subjects) > 5 else ''})")
    images: dict[str, BidsImage] = {}
    seen_sessions: set[str] = set()
    for subject, folder in subjects.items():
        if participants is not None and subject not in participants:
            continue
        places = [(None, folder)] + list(_labelled(folder, "ses-").items())
        for session, place in places:
            if session is not None:
                seen_sessions.add(session)
            if sessions is not None and session not in sessions:
                continue
            stem = f"sub-{subject}" + (f"_ses-{session}" if session else "")
            for path in sorted((place / "anat").glob("*_T1w.nii*")):
                case = strip_ending(path.name, _T1W_ENDINGS)
                if case is None or path.name.startswith(".") or not path.is_file():
                    continue
                if not (case == f"{stem}_T1w" or case.startswith(f"{stem}_")) or \
                        (session is None and "_ses-" in case):
                    raise InputError(f"{path}: a T1w file in {place.relative_to(root).as_posix()}/anat must be "
                                     f"named {stem}_[...]_T1w.nii[.gz]")
                if case in images:
                    raise InputError(f"{path}: same case '{case}' as {images[case].path.name}; remove one")
                images[case] = BidsImage(case, path, subject, session, path.relative_to(root).as_posix())
    for label in sessions or []:
        if label not in seen_sessions:
            raise InputError(f"{root}: no session ses-{label} in the selected participants")
    if not images:
        raise InputError(f"{root}: no T1w image (sub-*/[ses-*/]anat/*_T1w.nii[.gz]) for the selected participants "
                         f"and sessions")
    return [images[c] for c in sorted(images)]


def bids_groups(root: str | os.PathLike, cases: Sequence[str]) -> dict[str, str] | None:
    """``case -> group`` from the dataset's ``participants.tsv`` when it has a ``group`` column, else None.

    Example:
        >>> bids_groups("bids", ["sub-01_T1w"])  # doctest: +SKIP
        {'sub-01_T1w': 'sca2'}
    """
    from nnunet_ataxia.io.participants import read_participants

    table = Path(root) / "participants.tsv"
    try:
        header = table.read_text(encoding="utf-8").splitlines()[0].split("\t")
    except (OSError, UnicodeDecodeError, IndexError):
        return None
    if "group" not in [h.strip() for h in header]:
        return None
    return read_participants(table, cases, known_groups=None)


def _replace_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _replace_file(source: Path, target: Path) -> None:
    """``target`` becomes ``source``'s content: a hard link where possible, else a copy (atomically)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _entity(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", name) or "structure"


def write_derivatives(out: str | os.PathLike, rows: Sequence[Mapping], images: Sequence[BidsImage], *,
                      source: str | os.PathLike, model: Mapping) -> None:
    """Write the BIDS-derivatives files of a ``segment`` output folder (the module's layout).

    Args:
        out: the output folder (holds ``<case>/``, ``qc/`` and the rows' cases).
        rows: the rows of ``volumes.csv``; subjects with status ``ok`` get their files.
        images: the run's :class:`BidsImage` per case.
        source: the BIDS dataset root (recorded as ``SourceDatasets``).
        model: the model's description for ``GeneratedBy`` (name, folds, checkpoint).

    Example:
        >>> write_derivatives("seg_out", result.rows, find_bids_images("bids"), source="bids",  # doctest: +SKIP
        ...                   model={"name": "M2", "folds": ["0"], "checkpoint": "checkpoint_final.pth"})
    """
    import pandas as pd

    from nnunet_ataxia import __version__

    out = Path(out)
    by_case = {i.case: i for i in images}
    for row in rows:
        image = by_case.get(row["case"])
        if image is None or row.get("status") != "ok":
            continue
        case_dir = out / image.case
        record = json.loads((case_dir / "segment.json").read_text())
        anat = out / image.anat
        base = anat / image.prefix
        sources = [f"bids:raw:{image.relative}"]
        _replace_file(case_dir / f"{image.case}_seg.nii.gz", Path(f"{base}_dseg.nii.gz"))
        _replace_text(Path(f"{base}_dseg.json"), json.dumps(
            {"Description": "cerebellum and brainstem labels on the T1w grid (nnunet-ataxia segment)",
             "Sources": sources}, indent=2) + "\n")
        foreground = {n: int(v) for n, v in record.get("labels", {}).items() if int(v) != 0}
        _replace_text(Path(f"{base}_dseg.tsv"),
                      "index\tname\n" + "".join(f"{v}\t{n}\n" for n, v in sorted(foreground.items(),
                                                                                 key=lambda kv: kv[1])))
        for name in foreground:
            mask = Path(f"{base}_label-{_entity(name)}_mask.nii.gz")
            _replace_file(case_dir / f"{image.case}_{name}.nii.gz", mask)
            _replace_text(mask.with_name(mask.name.replace(".nii.gz", ".json")), json.dumps(
                {"Type": "ROI", "Description": f"{name} mask (nnunet-ataxia segment)", "Sources": sources},
                indent=2) + "\n")
        entities = {"participant_id": f"sub-{image.subject}"}
        if image.session:
            entities["session_id"] = f"ses-{image.session}"
        table = pd.DataFrame([{**entities, **{k: v for k, v in row.items() if k != "input"}}])
        _replace_text(Path(f"{base}_volumes.tsv"), table.to_csv(sep="\t", index=False, na_rep="n/a"))
        picture = out / "qc" / f"{image.case}.png"
        if picture.is_file():
            _replace_file(picture, out / f"sub-{image.subject}" / "figures" / f"{image.prefix}_dseg.png")
    description = {
        "Name": "nnunet-ataxia segment: cerebellum and brainstem", "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "nnunet-ataxia", "Version": __version__,
                         "Description": f"nnunet-ataxia segment with the nnU-Net model {model.get('name')} (folds "
                                        f"{', '.join(map(str, model.get('folds', [])))}, "
                                        f"{model.get('checkpoint')})",
                         "Model": dict(model)}],
        "DatasetLinks": {"raw": Path(source).resolve().as_uri()},
        "SourceDatasets": [{"URL": Path(source).resolve().as_uri()}]}
    _replace_text(out / BIDS_DESCRIPTION, json.dumps(description, indent=2) + "\n")
    _replace_text(out / ".bidsignore", "\n".join(BIDS_IGNORE) + "\n")
