"""nnunet_ataxia.planners"""
