"""The DDCM family on any backbone: DDCM and Turbo-DDCM, codecs that choose each reverse step's noise from a seeded
codebook ([`~ddcm.codec`]).

Example:

    >>> import torch
    >>> from cod_diffc.backbones import load_backbone
    >>> from cod_diffc.ddcm import TurboDDCMCodec
    >>> adapter = load_backbone("gaussian", std=0.3)
    >>> codec = TurboDDCMCodec(num_steps=8)
    >>> stream = codec.compress(torch.rand(1, 3, 16, 16), adapter, target_bpp=4.0, progress=False)
    >>> image = codec.decompress(stream, adapter, progress=False)
"""

from .codec import DDCMCodec, DDCMDecodeResult, DDCMEncodeResult, DDCMVariant, TurboDDCMCodec, decode, encode


__all__ = ["DDCMCodec", "DDCMDecodeResult", "DDCMEncodeResult", "DDCMVariant", "TurboDDCMCodec", "decode", "encode"]
