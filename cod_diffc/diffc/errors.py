"""The one error type a DiffC decoder raises for a stream it cannot trust."""


class StreamError(ValueError):
    """A DiffC stream is truncated, corrupted, of another format version, or made by another backbone/model.

    The message names the problem. Decoders raise this before writing any output.
    """
