"""The only augmentation of Cabeza-Ruiz et al. ("WDA"): a random rotation about one axis and random shifts."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform


class RandomAxisRotationShiftTransform(BasicTransform):
    """Rotate about one randomly chosen axis by an angle in ``rotation_degrees`` and shift every axis by a random
    number of voxels in ``shift_voxels`` (the paper: ±45°, ±20 voxels). Rotation and shift are composed into one affine
    map and each sample is resampled once, through one sampling grid shared by image (linear) and segmentation
    (nearest neighbour).

    Voxels coming from outside the patch get the background: label 0 in the segmentation and, in each image channel,
    the background intensity. The paper pads with 0, which is background in its raw intensities; in nnU-Net's
    z-scored arrays 0 is the mean intensity (grey matter, roughly), so the default here pads each channel with the
    patch's own minimum, which is the background (or the darkest tissue of a patch that lies wholly inside the head).

    Works on nnU-Net's per-sample tensors of shape (C, X, Y, Z).

    Args:
        rotation_degrees: range of the rotation angle in degrees.
        shift_voxels: range of the shift, in voxels, for each axis.
        image_fill: ``"minimum"`` (each channel's minimum over the patch, default) or a number (the same value for
            every channel, e.g. nnU-Net's normalized background when it is known).

    Example:
        >>> t = RandomAxisRotationShiftTransform()
        >>> out = t(image=torch.rand(1, 32, 32, 16), segmentation=torch.zeros(1, 32, 32, 16))
        >>> out['image'].shape
        torch.Size([1, 32, 32, 16])
    """

    def __init__(self, rotation_degrees: tuple[float, float] = (-45.0, 45.0),
                 shift_voxels: tuple[float, float] = (-20.0, 20.0), image_fill: str | float = "minimum") -> None:
        super().__init__()
        if not (image_fill == "minimum" or isinstance(image_fill, (int, float))):
            raise ValueError(f"image_fill must be 'minimum' or a number, got {image_fill!r}")
        self.rotation_degrees = rotation_degrees
        self.shift_voxels = shift_voxels
        self.image_fill = image_fill

    def get_parameters(self, **data_dict) -> dict:
        shape = data_dict["image"].shape[1:]
        dim = len(shape)
        angle = math.radians(np.random.uniform(*self.rotation_degrees))
        # rotation in the plane of the two axes other than the randomly chosen axis (2D: the only plane)
        axis = np.random.randint(3)
        plane = (0, 1) if dim == 2 else [a for a in range(3) if a != axis]
        rotation = np.eye(dim)
        i, j = plane
        rotation[i, i] = rotation[j, j] = math.cos(angle)
        rotation[i, j], rotation[j, i] = -math.sin(angle), math.sin(angle)
        shift = np.random.uniform(*self.shift_voxels, size=dim)
        theta = _normalized_affine(rotation, shift, shape)
        # one sampling grid for the composed rotation + shift, shared by the image and the segmentation
        grid = F.affine_grid(theta[None].to(torch.float32), [1, 1, *shape], align_corners=True)
        return {"theta": theta, "grid": grid}

    @staticmethod
    def _warp(x: torch.Tensor, grid: torch.Tensor, mode: str) -> torch.Tensor:
        return F.grid_sample(x[None].float(), grid, mode=mode, padding_mode="zeros", align_corners=True)[0]

    def _apply_to_image(self, img: torch.Tensor, **params) -> torch.Tensor:
        x = img.float()
        if self.image_fill == "minimum":
            fill = x.reshape(x.shape[0], -1).amin(1).reshape(-1, *([1] * (x.ndim - 1)))
        else:
            fill = torch.full([x.shape[0]] + [1] * (x.ndim - 1), float(self.image_fill))
        # warp (image - fill) with zero padding: voxels from outside the patch come out as exactly ``fill``
        return (self._warp(x - fill, params["grid"], "bilinear") + fill).to(img.dtype)

    def _apply_to_segmentation(self, segmentation: torch.Tensor, **params) -> torch.Tensor:
        return self._warp(segmentation, params["grid"], "nearest").to(segmentation.dtype)


def _normalized_affine(rotation: np.ndarray, shift: np.ndarray, shape) -> torch.Tensor:
    """``theta`` for ``affine_grid`` (align_corners=True) of ``p_src = R (p - c) + c + t`` in voxel coordinates.

    With ``D = diag((n - 1) / 2)`` voxel offsets from the centre are ``D u`` in normalized coordinates ``u``, so
    ``u_src = D⁻¹ R D u + D⁻¹ t``. ``affine_grid`` orders grid coordinates (x, y, z) = last tensor axis first.
    """
    half = np.maximum((np.asarray(shape, dtype=float) - 1) / 2, 0.5)
    d_inv = np.diag(1 / half)
    matrix = d_inv @ rotation @ np.diag(half)
    offset = d_inv @ shift
    order = list(range(len(shape)))[::-1]
    theta = np.concatenate([matrix[np.ix_(order, order)], offset[order][:, None]], axis=1)
    return torch.from_numpy(theta)
