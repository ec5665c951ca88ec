"""Text prompts as side information: the bytes any text-conditioned backbone sends so a decoder needs no prompt.

No prompt costs nothing (`b""`); otherwise one format byte and the prompt, as raw UTF-8 or as raw DEFLATE
(RFC 1951, no zlib header) of the UTF-8, whichever is shorter. [`unpack_prompt`] bounds what it inflates, so a
forged stream cannot make a decoder allocate more than [`MAX_PROMPT_BYTES`].
"""

import zlib

from cod_diffc.errors import StreamError


MAX_PROMPT_BYTES = 4096
"""Largest prompt, in UTF-8 bytes, that a stream may carry."""

_PROMPT_UTF8 = 0
_PROMPT_DEFLATE = 1


def check_prompt(prompt: str) -> None:
    """`ValueError` unless `prompt` is a string of at most [`MAX_PROMPT_BYTES`] UTF-8 bytes."""
    if not isinstance(prompt, str):
        raise ValueError(f"the prompt must be a string, got {prompt!r}")
    if len(prompt.encode("utf-8")) > MAX_PROMPT_BYTES:
        raise ValueError(f"the prompt must be at most {MAX_PROMPT_BYTES} bytes in UTF-8")


def pack_prompt(prompt: str) -> bytes:
    """The side-information bytes of `prompt`: `b""` for no prompt, else the shorter of the two formats."""
    check_prompt(prompt)
    if not prompt:
        return b""
    text = prompt.encode("utf-8")
    compressor = zlib.compressobj(level=9, wbits=-15)
    deflated = compressor.compress(text) + compressor.flush()
    if len(deflated) < len(text):
        return bytes([_PROMPT_DEFLATE]) + deflated
    return bytes([_PROMPT_UTF8]) + text


def unpack_prompt(side_info: bytes) -> str:
    """The prompt of [`pack_prompt`]'s bytes; raises [`~errors.StreamError`] for bytes it did not write."""
    if not side_info:
        return ""
    method, payload = side_info[0], side_info[1:]
    if method == _PROMPT_UTF8:
        text = payload
    elif method == _PROMPT_DEFLATE:
        decompressor = zlib.decompressobj(wbits=-15)
        try:
            text = decompressor.decompress(payload, MAX_PROMPT_BYTES + 1)
        except zlib.error as error:
            raise StreamError(f"corrupt compressed prompt in the side information: {error}") from None
        if not decompressor.eof or decompressor.unused_data or decompressor.unconsumed_tail:
            raise StreamError(
                f"the compressed prompt in the side information is truncated, has trailing bytes or exceeds "
                f"{MAX_PROMPT_BYTES} bytes"
            )
    else:
        raise StreamError(f"unknown prompt format {method} in the side information")
    if not 0 < len(text) <= MAX_PROMPT_BYTES:
        raise StreamError(f"the prompt in the side information must be 1-{MAX_PROMPT_BYTES} bytes, got {len(text)}")
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as error:
        raise StreamError(f"the prompt in the side information is not UTF-8: {error}") from None
