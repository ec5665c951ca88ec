"""The one error type a decoder raises for a stream it cannot trust."""


class StreamError(ValueError):
    """A stream is truncated, corrupted, of another format version or codec, or made by another backbone or model.

    The message names the problem. Decoders raise this before writing any output.
    """
