"""C-MCR Studio: connect frozen contrastive spaces (CLIP, CLAP, ULIP) with small projectors.

Heavy submodules (encoders, the app's service layer) are imported lazily so that
`import cmcr` stays cheap for scripts that only touch feature memories.
"""

from cmcr.errors import CheckpointError, CMCRError, HubUnavailableError, InputError

__version__ = "0.1.0"

__all__ = [
    "CMCRError",
    "CheckpointError",
    "HubUnavailableError",
    "InputError",
    "UnifiedSpace",
    "__version__",
    "list_pretrained",
    "load_spaces",
]


def __getattr__(name: str):
    if name in ("UnifiedSpace", "load_spaces"):
        from cmcr import space

        return getattr(space, name)
    if name == "list_pretrained":
        from cmcr.pretrained import list_pretrained

        return list_pretrained
    raise AttributeError(f"module 'cmcr' has no attribute {name!r}")
