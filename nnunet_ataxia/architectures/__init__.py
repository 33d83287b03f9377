"""Network architectures: M1/M2 (Cabeza-Ruiz et al.) and the WMH location networks (Ghafoorian et al.)."""
from nnunet_ataxia.architectures.common import PatchSizeError
from nnunet_ataxia.architectures.m1_unet import M1UNet
from nnunet_ataxia.architectures.m2_inception_unet import InceptionBlock3d, M2InceptionUNet

__all__ = ["M1UNet", "M2InceptionUNet", "InceptionBlock3d", "PatchSizeError"]
