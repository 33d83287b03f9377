"""nnunet_ataxia.wmh"""
