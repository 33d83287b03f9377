"""nnunet_ataxia.dataset_conversion"""
