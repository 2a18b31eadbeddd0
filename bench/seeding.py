"""Seeds from names: every random draw keyed by what it is for, not by draw order."""
from __future__ import annotations

import random
import zlib
from typing import Any



def stable_seed(*parts: Any) -> int:
    """A seed from names and numbers that does not depend on Python's hash salt."""
    return zlib.crc32("/".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (every draw of ours has its own seeded generator too)."""
    # deferred: only a run seeds torch; `stable_seed` serves commands that never import it
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
