"""Exceptions that carry a message meant for the person at the keyboard."""


class FacesearchError(Exception):
    """Base class: the message is shown to the user as it is."""


class ModelUnavailable(FacesearchError):
    """No source could deliver a model file with the pinned hash."""


class ImageRejected(FacesearchError):
    """A file cannot be used as an image; the message says why."""


class NotFound(FacesearchError):
    """A named collection, image or face does not exist."""


class ModelMismatch(FacesearchError):
    """Embeddings of different models cannot be compared."""


class ImageTooLarge(ImageRejected):
    """A file or image above the configured byte or pixel limit."""


class UnsupportedImage(ImageRejected):
    """Bytes that are not an image in a supported format."""


class VideoRejected(ImageRejected):
    """A file cannot be used as a video (bad container, codec, limits); the message says why."""


class Conflict(FacesearchError):
    """The request clashes with what is stored (a name taken, a job running)."""


class StorageError(FacesearchError):
    """A write failed for want of space (a full disk, a quota, a file size limit) or
    an I/O error; what was committed before it is kept."""
