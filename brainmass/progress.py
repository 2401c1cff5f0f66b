"""Progress bars for long runs (sweeps, fits, training, samplers, simulation banks).

One helper, `progress_bar`, so that every long-running driver in brainmass and in the
packages built on it (`inference`) draws the same kind of bar: a tqdm bar on stderr, or the
notebook widget when ipywidgets is installed. Only the outer Python driver holds the bar;
nothing inside a jitted function touches it.
"""

from __future__ import annotations

import importlib.util
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(*, total: int, desc: str, unit: str, disable: bool, **kwargs: Any) -> Any:
    """A tqdm progress bar: the notebook widget when ipywidgets is installed, else text on stderr.

    Choosing the widget only when ipywidgets can be imported avoids tqdm's "IProgress not
    found" warning in notebooks without it.

    **Arguments:**

    - `total`: the number of units of work (steps, chunks, epochs, ...), an integer >= 0.
    - `desc`: the label shown before the bar, e.g. `"sweep"`.
    - `unit`: the name of one unit of work, e.g. `"chunk"` or `"epoch"`.
    - `disable`: True for no output at all (the bar still accepts `update` and `close`).
    - `**kwargs`: passed on to `tqdm` (e.g. `initial=` when resuming, `leave=False`).

    **Returns:** a `tqdm` instance; call `update(n)` after each piece of work and `close()`
    at the end, or use it as a context manager.
    """
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, **kwargs)
