"""The FC1 FFT path's inverse transform as two matrix products equals the inverse real FFT it replaced."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nnunet_ataxia.architectures.wmh_fft_conv import conv2d_fft, valid_inverse_dft


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("fft_size, tile", [((42, 42), (25, 25)), ((9, 7), (4, 7)), ((8, 6), (8, 1))])
def test_valid_inverse_dft_equals_irfft2(fft_size, tile, dtype, tol):
    g = torch.Generator().manual_seed(sum(fft_size) + sum(tile))
    y = torch.fft.rfft2(torch.randn(5, *fft_size, generator=g, dtype=dtype))        # (5, Nh, Nf)
    y[:, :, 0] += 1j      # imaginary parts of the DC (and Nyquist) column are ignored by irfft: must be here too
    y[:, :, -1] += 2j
    old = torch.fft.irfft2(y, s=fft_size)[:, :tile[0], :tile[1]]                    # the replaced computation
    rows_m, cols_m = valid_inverse_dft(fft_size, tile, dtype)
    nh, nf = y.shape[1:]
    rows = (rows_m @ y.permute(1, 2, 0).reshape(nh, nf * 5)).view(tile[0], nf, 5)
    new = (cols_m @ torch.cat([rows.real, rows.imag], 1)).permute(2, 0, 1)
    assert new.dtype == dtype and new.shape == old.shape
    assert (new - old).abs().max().item() <= tol * old.abs().max().item()


def test_conv2d_fft_with_matrix_inverse_equals_direct_convolution_odd_sizes():
    g = torch.Generator().manual_seed(5)
    x, w = torch.randn(2, 3, 21, 19, generator=g, dtype=torch.float64), torch.randn(4, 3, 5, 5, generator=g,
                                                                                    dtype=torch.float64)
    for dilation, tile in ((1, 3), (2, 4), (1, 50)):
        fft = conv2d_fft(x, w, None, dilation, max_tile=tile, dtype=torch.float64)
        assert torch.allclose(fft, F.conv2d(x, w, dilation=dilation), atol=1e-10)
