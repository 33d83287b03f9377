"""nnunet_ataxia.preprocessing"""
