"""Training objectives over one masked timm ViT: ``mae``, ``mug``, ``clip``, ``simclr``.

Each is an `nn.Module` with ``.encoder`` whose ``forward(batch, generator=None)`` returns a dict of
named tensors (``loss`` and its terms; ``pred`` and ``mask`` for the generative ones).
"""

from .clip import CLIPObjective
from .contrastive import clip_loss, nt_xent_loss
from .mae import MAEObjective
from .mug import MUGObjective
from .registry import OBJECTIVES, build_objective, create_model
from .simclr import SimCLRObjective

__all__ = [
    "OBJECTIVES",
    "CLIPObjective",
    "MAEObjective",
    "MUGObjective",
    "SimCLRObjective",
    "build_objective",
    "clip_loss",
    "create_model",
    "nt_xent_loss",
]
