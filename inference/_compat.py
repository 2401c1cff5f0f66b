"""Work-arounds for our dependencies, applied once when `inference` is imported."""

from __future__ import annotations

import sys


def repair_lazy_numpyro() -> None:
    """Re-attach NumPyro's submodules to their parent packages.

    ArviZ (arviz_base.io_numpyro) registers `numpyro` as a lazy module
    (`lazy_loader`). When `import arviz` comes before `import numpyro`, NumPyro
    then loads through that lazy module and some submodules end up missing as
    attributes of their parents, e.g. `numpyro.distributions.distribution`,
    which `numpyro.factor` needs: every model with a factor fails with an
    AttributeError. Setting the attributes back (they are in `sys.modules`)
    repairs it; nothing changes where the import order was the other way.
    """
    import numpyro  # noqa: F401
    import numpyro.distributions  # noqa: F401
    import numpyro.infer  # noqa: F401

    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith("numpyro."):
            continue
        parent_name, _, child = name.rpartition(".")
        parent = sys.modules.get(parent_name)
        if parent is not None and child not in vars(parent):
            setattr(parent, child, module)


repair_lazy_numpyro()
