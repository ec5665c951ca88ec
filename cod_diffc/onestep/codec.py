r"""A one-step codec: the stream is the backbone's condition, and the decoder predicts the image from an all-zero
latent at the noise end (`t = 1`) in one unguided pass.

That is how CoD-Lite's one-step codecs work: a CoD-Lite fine-tuned so that its denoiser, given the condition of a
condition codec at 0.0039 to 0.5 bpp and a zero image at the noise end, returns the image. The rate is the
model's: the condition's bytes and the container's fields. The codec goes through the backbone interface only (the
condition, `predict_x0_and_epsilon`, `decode_latent`), so it runs on any backbone with a condition, though only a
model trained for it reconstructs well.

Payload (in the shared container of [`~codecs.container`]): one byte, the layout version (1).
"""

import torch

from cod_diffc.backbones.padding import crop_image
from cod_diffc.codecs.codec import Codec, check_decode_method, check_target_bpp
from cod_diffc.codecs.container import Container, read_container, write_container
from cod_diffc.codecs.core import DEFAULT_MAX_LATENT_ELEMENTS, new_container, prepare_decode, prepare_encode
from cod_diffc.codecs.devices import codec_precision
from cod_diffc.errors import StreamError


PAYLOAD_VERSION = 1
"""The payload layout this module writes and reads."""


class OneStepCodec(Codec):
    r"""
    The backbone's condition as the stream, decoded in one pass from an all-zero latent at `t = 1` (no guidance).
    It takes no settings: the rate is the model's, and a target below it is refused (or, with `clamp_targets`,
    given that file). Both decode methods give the same image: the one pass is the whole decoder.
    """

    name = "cod-lite-onestep"
    summary = "one-step codec: the condition alone, decoded in one pass (CoD-Lite's one-step models; rate = model's)"

    def compress(self, image, adapter, *, target_bpp, seed=0, clamp_targets=False, progress=True) -> bytes:
        check_target_bpp(target_bpp)
        setup = prepare_encode(image, adapter, 1.0, 1.0)
        if not setup.condition.side_info:
            raise ValueError(f"codec {self.name!r} needs a backbone with a condition; {adapter.name!r} has none")
        stream = write_container(new_container(self.name, adapter, setup, seed, payload=bytes([PAYLOAD_VERSION])))
        bpp = 8 * len(stream) / (setup.height * setup.width)
        if bpp > target_bpp and not clamp_targets:
            raise ValueError(
                f"codec {self.name!r} codes this {setup.height}x{setup.width} image in {len(stream)} bytes "
                f"({bpp:.4f} bpp), above the target {target_bpp} bpp: its rate is the model's"
            )
        return stream

    @codec_precision
    def decompress(self, stream, adapter, *, method="flow", num_denoise_steps=25, progress=True) -> torch.Tensor:
        """The one-pass reconstruction, whatever `method` and `num_denoise_steps` say (a one-step codec has one
        decoder, and no noisy latent: [`decompress_latent`] is `None`)."""
        check_decode_method(method)
        container = self.read(stream)
        container.check_backbone(adapter)
        setup = prepare_decode(
            adapter, container.height, container.width, container.side_info, DEFAULT_MAX_LATENT_ELEMENTS
        )
        zeros = torch.zeros(1, *setup.latent_shape, device=adapter.device)  # the all-zero latent at t = 1
        time = torch.tensor(1.0, device=adapter.device)
        x0_hat, _ = adapter.predict_x0_and_epsilon(zeros, time, setup.condition, 1.0)
        return crop_image(adapter.decode_latent(x0_hat), container.height, container.width)

    def stream_backbone(self, stream: bytes) -> str:
        return self.read(stream).backbone

    def read(self, stream: bytes) -> Container:
        """The container of a stream of this codec; [`~errors.StreamError`] for anything else."""
        container = read_container(stream)
        if container.codec != self.name:
            raise StreamError(f"not a {self.name} stream: made by codec {container.codec!r}")
        if container.payload != bytes([PAYLOAD_VERSION]):
            raise StreamError(
                f"corrupt stream: a {self.name} payload is the layout version byte {PAYLOAD_VERSION}, got "
                f"{container.payload.hex() or 'nothing'}"
            )
        return container
