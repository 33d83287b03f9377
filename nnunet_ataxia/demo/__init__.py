"""nnunet_ataxia.demo"""
