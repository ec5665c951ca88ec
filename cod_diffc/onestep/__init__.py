"""One-step codecs: the backbone's condition is the whole stream, decoded in one pass ([`~onestep.codec`]); CoD-Lite's
one-step codecs (`cod-diffc convert --variant cod-lite-0.0039` ... `cod-lite-0.5`) run as `cod-lite-onestep`."""

from .codec import OneStepCodec


__all__ = ["OneStepCodec"]
