"""One-command segmentation of native T1 images: preprocessing, nnU-Net prediction, native masks, volumes, QC.

* :mod:`nnunet_ataxia.inference.model`: which nnU-Net model folder to use (the shipped pretrained M2 by default) and
  the in-process ``nnUNetPredictor``.
* :mod:`nnunet_ataxia.inference.subject`: one subject, from the native T1 to native masks and volumes.
* :mod:`nnunet_ataxia.inference.qc`: the QC picture per subject and the HTML index.
* :mod:`nnunet_ataxia.inference.segment`: the run over a file or folder (output folder rules, skip-if-done, parallel
  subjects, ``volumes.csv``).
"""
