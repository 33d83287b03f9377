#!/bin/bash
# Model v2 trained twice as long (benchmarks/README.md): the base v2 trainer (40 epochs, Adam restarted at 3e-4, poly)
# started from model v2's final network, on v2's own preprocessed data (no re-rendering). Resume: add --c.
export nnUNet_raw=/work/runs/m2_v2/nnUNet_raw nnUNet_preprocessed=/work/runs/m2_v2/nnUNet_preprocessed
export nnUNet_results=/work/runs/m2_v2_longer/nnUNet_results nnUNet_extTrainer=$(nnunet-ataxia trainer-path)
export nnUNet_n_proc_DA=0 nnUNet_compile=false nnUNet_def_n_proc=2 MPLBACKEND=Agg
exec nice -n 5 nnUNetv2_train 511 3d_fullres 0 -p nnUNetFixed128Plans -tr M2InceptionTrainer_pretrainedLabelMaps -device cpu "$@"
