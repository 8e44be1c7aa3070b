"""The faceprint error tree.

Every error the library raises on purpose derives from :class:`FaceprintError`, so callers
can catch one type. The CLI maps these to a one-line message and a non-zero exit code; the
service maps them to 4xx/5xx JSON bodies.
"""

from __future__ import annotations


class FaceprintError(Exception):
    """Root of every error faceprint raises on purpose."""

    exit_code: int = 1


class ImageDecodeError(FaceprintError, ValueError):
    """The input could not be read as an image (corrupt, truncated, empty, wrong type, too large)."""

    exit_code = 3


class ImageTooLargeError(ImageDecodeError):
    """The image's header declares more pixels, or a decode needing more memory, than the limit allows
    (refused before any pixel is decoded)."""


class NoFaceError(FaceprintError, LookupError):
    """A face was required but none was found, or the requested face index does not exist."""

    exit_code = 4


class UnknownModelError(FaceprintError, KeyError):
    """A model or detector name is neither registered nor an existing file path."""

    exit_code = 5

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ModelMismatchError(FaceprintError, ValueError):
    """Embeddings from different models (or of different sizes) were compared."""

    exit_code = 6


class ModelLoadError(FaceprintError, RuntimeError):
    """A model file could not be read, converted or loaded."""

    exit_code = 7


class ConfigError(FaceprintError, ValueError):
    """A parameter or spec value is out of range or inconsistent."""

    exit_code = 2


class PairsFileError(FaceprintError, ValueError):
    """A labelled-pairs file (LFW ``pairs*.txt`` or CSV) is malformed or names a missing image.

    The message names the file and the 1-based line number.
    """

    exit_code = 2


class GalleryError(FaceprintError, RuntimeError):
    """A gallery (face database) operation failed: unreadable store, bad URI, bad export file."""

    exit_code = 10


class PersonNotFoundError(GalleryError, LookupError):
    """A person name is not enrolled in the gallery."""

    exit_code = 11

    def __str__(self) -> str:  # LookupError would not quote, but keep it explicit
        return str(self.args[0]) if self.args else ""


class PersonExistsError(GalleryError):
    """A person name is already taken (add, rename or import onto an existing name)."""

    exit_code = 12


class EnrollmentError(GalleryError):
    """Nothing could be enrolled: every photo was rejected by the quality gate."""

    exit_code = 13


class CollectionError(FaceprintError, ValueError):
    """The photo index cannot do what was asked (unreadable index, mixed models, unknown face id)."""

    exit_code = 14


class UnknownClusterError(CollectionError, LookupError):
    """A cluster id that the photo index does not hold."""

    exit_code = 15
class TrainingDataError(FaceprintError, ValueError):
    """A training folder cannot be used: missing or empty identity folders, too few
    identities or images for the chosen loss or split. The message names the folder."""

    exit_code = 2
class VideoSourceError(FaceprintError, OSError):
    """A video source (file, camera index, RTSP/HTTP URL) cannot be opened or yields no frames,
    or an output video cannot be written."""

    exit_code = 20


__all__ = [
    "CollectionError",
    "ConfigError",
    "EnrollmentError",
    "FaceprintError",
    "GalleryError",
    "ImageDecodeError",
    "ImageTooLargeError",
    "ModelLoadError",
    "ModelMismatchError",
    "NoFaceError",
    "PairsFileError",
    "PersonExistsError",
    "PersonNotFoundError",
    "UnknownClusterError",
    "TrainingDataError",
    "UnknownModelError",
    "VideoSourceError",
]
