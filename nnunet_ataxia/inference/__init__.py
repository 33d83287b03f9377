"""One-command segmentation of native T1 images: preprocessing, nnU-Net prediction, native masks, volumes, QC.

* :mod:`nnunet_ataxia.inference.model`: which nnU-Net model folder to use (the shipped pretrained M2 by default) and
  the in-process ``nnUNetPredictor``.
* :mod:`nnunet_ataxia.inference.subject`: one subject, from the native T1 to native masks and volumes.
* :mod:`nnunet_ataxia.inference.qc`: the QC picture per subject and the HTML index (flagged subjects first).
* :mod:`nnunet_ataxia.inference.qc_flags`: the automatic QC flags (``qc`` column of ``volumes.csv``).
* :mod:`nnunet_ataxia.inference.segment`: the run over a file or folder (output folder rules, parallel subjects).
* :mod:`nnunet_ataxia.inference.run_records`: what makes a finished subject re-usable by a re-run; reserved names.
* :mod:`nnunet_ataxia.inference.tables`: ``volumes.csv`` and the QC index of a run.
* :mod:`nnunet_ataxia.inference.bids`: BIDS datasets in, BIDS derivatives out.
* :mod:`nnunet_ataxia.inference.parts`: a cohort split into parts (``--num-parts``) and merged.
"""
