"""nnunet_ataxia.evaluation"""
