"""The two packages are layered: `inference` uses only public brainmass names, and
brainmass never imports `inference` (checked on the source, by its syntax tree)."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _private(dotted: str) -> str | None:
    """The first private part (`_x`, not a dunder) of a dotted name, or None."""
    for part in dotted.split("."):
        if part.startswith("_") and not (part.startswith("__") and part.endswith("__")):
            return part
    return None


def _brainmass_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """`(line, dotted name)` of every brainmass name that a module imports or reads.

    Imports (`import brainmass._x`, `from brainmass.a import _y`) and attribute chains on a
    name bound to a brainmass module (`bm._sweep`, `bm.linear._common`).
    """
    uses: list[tuple[int, str]] = []
    aliases: dict[str, str] = {}  # local name -> the brainmass module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "brainmass" or alias.name.startswith("brainmass."):
                    uses.append((node.lineno, alias.name))
                    if alias.asname:
                        aliases[alias.asname] = alias.name
                    else:
                        aliases["brainmass"] = "brainmass"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "brainmass" or node.module.startswith("brainmass."):
                for alias in node.names:
                    name = f"{node.module}.{alias.name}"
                    uses.append((node.lineno, name))
                    aliases[alias.asname or alias.name] = name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain, inner = [node.attr], node.value
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id in aliases:
                uses.append((node.lineno, ".".join([aliases[inner.id], *reversed(chain)])))
    return uses


def _parse(path: Path) -> ast.AST:
    with warnings.catch_warnings():  # a bad escape in a docstring is not this test's business
        warnings.simplefilter("ignore", SyntaxWarning)
        return ast.parse(path.read_text(), filename=str(path))


def _private_methods_of_brainmass() -> set[str]:
    """Private methods of brainmass classes whose names inference does not define itself.

    Inference's own names (its functions, methods, class fields and `obj._x = ...`
    attributes) are left out, so that `npe._norm` is not mistaken for a brainmass method.
    """
    methods = set()
    for path in _modules("brainmass"):
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.ClassDef):
                methods |= {
                    f.name
                    for f in node.body
                    if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                }
    own = set()
    for path in _modules("inference"):
        for node in ast.walk(_parse(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                own.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                own.add(node.attr)
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        own.add(item.target.id)
                    elif isinstance(item, ast.Assign):
                        own |= {t.id for t in item.targets if isinstance(t, ast.Name)}
    return {n for n in methods - own if _private(n) == n}


def _private_calls(tree: ast.AST, private: set[str]) -> list[tuple[int, str]]:
    """`(line, name)` of every `obj._name` with `_name` in `private`, `obj` not self/cls."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in private:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append((node.lineno, node.attr))
    return found


def test_the_checker_finds_private_names():
    """The checks below can fail: they see each way of reaching a private name."""
    source = (
        "import brainmass as bm\n"
        "import brainmass._sweep\n"
        "from brainmass._progress import progress_bar\n"
        "from brainmass.simulator import _state_array\n"
        "from brainmass import _demo\n"
        "x = bm._sweep._auto_chunk_size\n"
        "y = bm.linear.fixed_point\n"
    )
    found = [name for _, name in _brainmass_uses(ast.parse(source)) if _private(name)]
    assert found == [
        "brainmass._sweep",
        "brainmass._progress.progress_bar",
        "brainmass.simulator._state_array",
        "brainmass._demo",
        "brainmass._sweep._auto_chunk_size",
        "brainmass._sweep",
    ]
    calls = "sim._check_paths(['a'])\nself._check_paths(['a'])\nsim._mine()\n"
    assert _private_calls(ast.parse(calls), {"_check_paths"}) == [(1, "_check_paths")]
    assert "_specs" in _private_methods_of_brainmass()  # Simulator._specs, not in inference


def test_inference_uses_only_public_brainmass_names():
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in _modules("inference")
        for line, name in _brainmass_uses(_parse(path))
        if _private(name)
    ]
    assert bad == [], f"inference reaches into brainmass privates: {bad}"


def test_inference_calls_no_private_brainmass_method():
    """`sim._check_paths(...)` and the like: a private method of a brainmass object."""
    private = _private_methods_of_brainmass()
    bad = []
    for path in _modules("inference"):
        tree = _parse(path)
        bad += [
            f"{path.relative_to(ROOT)}:{line}: .{name}"
            for line, name in _private_calls(tree, private)
        ]
    assert bad == []


def _inference_imports(tree: ast.AST) -> list[str]:
    """The `inference` modules that a module imports (statements and import_module calls)."""
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bad += [a.name for a in node.names if a.name.split(".")[0] == "inference"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "inference":
                bad.append(node.module)
        elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
            # importlib.import_module("inference...") / __import__("inference")
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            if name in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and str(arg.value).split(".")[0] == "inference":
                    bad.append(str(arg.value))
    return bad


def test_brainmass_never_imports_inference():
    source = "import inference\nfrom inference.demo import run_demo\nimport_module('inference.x')\n"
    assert _inference_imports(ast.parse(source)) == ["inference", "inference.demo", "inference.x"]
    bad = {
        str(path.relative_to(ROOT)): found
        for path in _modules("brainmass")
        if (found := _inference_imports(_parse(path)))
    }
    assert bad == {}, f"brainmass imports inference: {bad}"
