"""Model fingerprints cached by the identity of the weight files, so a big model is hashed once, not on every load.

[`~backbones.adapter.fingerprint_state_dict`] reads every weight (seconds for Stable Diffusion's billion). A model
loaded from files is the same model as long as its files are: [`cached_fingerprint`] keys the digest by each file's
resolved path, size, modification time and, for safetensors files, a hash of the header (every tensor's name,
dtype, shape and offset), plus the adapter's settings, and computes it only when that key is new. The value is the
full digest itself, so streams do not depend on whether it came from the cache.

The cache is one small JSON file: `$COD_DIFFC_CACHE/fingerprints.json`, by default under `$XDG_CACHE_HOME` (or
`~/.cache`) in `cod_diffc/`. A missing, unreadable or corrupt cache is recomputed, never an error.
"""

import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


CACHE_ENV = "COD_DIFFC_CACHE"
MAX_ENTRIES = 256
_MAX_HEADER_BYTES = 100 * 2**20


def cache_file() -> Path:
    """Where the fingerprints are cached."""
    folder = os.environ.get(CACHE_ENV)
    if not folder:
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cod_diffc"
    return Path(folder) / "fingerprints.json"


def _safetensors_header_digest(path: Path) -> str | None:
    """BLAKE2b of a safetensors file's JSON header (names, dtypes, shapes, offsets), without reading the tensors."""
    with path.open("rb") as file:
        prefix = file.read(8)
        if len(prefix) != 8:
            return None
        (length,) = struct.unpack("<Q", prefix)
        if length > _MAX_HEADER_BYTES:
            return None
        return hashlib.blake2b(file.read(length), digest_size=16).hexdigest()


def file_identity(path: str | os.PathLike) -> dict[str, Any]:
    """What identifies a weight file without reading it all: resolved path, size, modification time, and the
    header digest of a safetensors file."""
    path = Path(path).resolve()
    stat = path.stat()
    identity = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if path.suffix == ".safetensors":
        identity["header"] = _safetensors_header_digest(path)
    return identity


def _read_cache(path: Path) -> dict[str, str]:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_cache(path: Path, cache: dict[str, str]) -> None:
    """Atomically (a reader sees the old file or the new one); a cache that cannot be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".fingerprints.", delete=False) as file:
            json.dump(cache, file)
        os.replace(file.name, path)
    except OSError:
        return


def cached_fingerprint(
    files: Sequence[str | os.PathLike], settings: Mapping[str, Any], compute: Callable[[], bytes]
) -> bytes:
    r"""
    The fingerprint of a model loaded from `files`: from the cache when the files and `settings` are those of an
    earlier call, else `compute()` (stored for next time).

    Args:
        files (`Sequence[str | os.PathLike]`): Every file the model's weights were read from.
        settings (`Mapping[str, Any]`): JSON-serialisable settings that change the outputs besides the files
            (dtype, device kind, adapter options).
        compute (`Callable[[], bytes]`): The full digest ([`~backbones.adapter.fingerprint_state_dict`]).
    """
    key_source = {"files": sorted((file_identity(path) for path in files), key=lambda item: item["path"])}
    key_source["settings"] = dict(settings)
    key = hashlib.blake2b(json.dumps(key_source, sort_keys=True).encode(), digest_size=16).hexdigest()
    path = cache_file()
    cache = _read_cache(path)
    cached = cache.get(key)
    if isinstance(cached, str):
        try:
            return bytes.fromhex(cached)
        except ValueError:
            pass
    fingerprint = compute()
    cache.pop(key, None)
    cache[key] = fingerprint.hex()
    _write_cache(path, dict(list(cache.items())[-MAX_ENTRIES:]))
    return fingerprint


class CachedFingerprintMixin:
    """
    `fingerprint()` for an adapter that may have been loaded from files: its [`weights_fingerprint`] computed once
    per adapter, and for a model read from `model_files` once per version of those files ([`cached_fingerprint`]).

    The adapter sets `model_files` (empty for a model built in memory) and implements [`weights_fingerprint`] and
    [`fingerprint_settings`].
    """

    model_files: Sequence[Path] = ()
    """Every file the model's weights were read from; empty: not read from files (nothing is cached)."""
    _fingerprint: bytes | None = None

    def weights_fingerprint(self) -> bytes:
        """The full digest of the weights and settings ([`~backbones.adapter.fingerprint_state_dict`])."""
        raise NotImplementedError

    def fingerprint_settings(self) -> dict[str, Any]:
        """What changes the outputs besides the files (adapter name, dtype, options), as JSON-serialisable data."""
        raise NotImplementedError

    def fingerprint(self) -> bytes:
        if self._fingerprint is None:
            if self.model_files:
                files, settings = self.model_files, self.fingerprint_settings()
                self._fingerprint = cached_fingerprint(files, settings, self.weights_fingerprint)
            else:
                self._fingerprint = self.weights_fingerprint()
        return self._fingerprint
