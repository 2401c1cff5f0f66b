"""Progress bars for long runs (sweeps, fits): tqdm, drawn as a widget where one can be."""

from __future__ import annotations

import importlib.util
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(*, total: int, desc: str, unit: str, disable: bool, **kwargs: Any) -> Any:
    """A tqdm bar on stderr; the notebook widget when ipywidgets is installed (no warning else)."""
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, **kwargs)
