"""The package's floors: imports only run downward, no module over 400 lines, one home per low-level helper.

The order below is the one docs/explanation/design.md describes: ``cli`` -> ``commands`` -> ``demo`` ->
the stage packages (in pipeline order, each may import the ones after it) -> ``io`` and ``errors`` at the bottom.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nnunet_ataxia"

#: top to bottom; a module may import from its own package and from packages further down this list
FLOORS = ["cli", "commands", "demo", "nnunet_ext_trainers", "inference", "pretrained", "evaluation",
          "dataset_conversion", "synthesis", "preprocessing", "planners", "trainers", "architectures", "io", "errors"]


def _package_of(path: Path, root: Path = PACKAGE) -> str:
    return path.relative_to(root).parts[0].removesuffix(".py")


def _imports(path: Path):
    """(imported top-level package of nnunet_ataxia, line) for every import in the file, nested ones included."""
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import (the package uses absolute imports)"
            if node.module == "nnunet_ataxia":
                names = [f"nnunet_ataxia.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "nnunet_ataxia" and len(parts) > 1:
                yield parts[1], node.lineno


def _modules(root: Path = PACKAGE):
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def upward_imports(root: Path = PACKAGE) -> list[str]:
    """Every import in the package under ``root`` that goes from a lower floor to a higher one."""
    upward = []
    for path in _modules(root):
        src = _package_of(path, root)
        if src == "__init__":
            continue
        for dst, line in _imports(path):
            if not ((root / dst).is_dir() or (root / f"{dst}.py").is_file()):
                continue  # an attribute of the package root (``__version__``)
            if dst != src and FLOORS.index(dst) < FLOORS.index(src):
                upward.append(f"{path.relative_to(root.parent)}:{line}: {src} imports {dst}")
    return upward


def test_every_package_has_a_floor():
    packages = {_package_of(p) for p in _modules()} - {"__init__"}
    assert packages == set(FLOORS), f"packages without a floor: {packages - set(FLOORS)}; " \
                                    f"floors without a package: {set(FLOORS) - packages}"


def test_imports_only_run_downward():
    upward = upward_imports()
    assert not upward, "imports from a lower floor to a higher one:\n" + "\n".join(upward)


def test_commands_do_not_import_each_other():
    sideways = [f"{p.name}:{line}" for p in (PACKAGE / "commands").glob("*.py")
                for node in ast.walk(ast.parse(p.read_text())) if isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("nnunet_ataxia.commands") for line in [node.lineno]]
    assert not sideways, f"commands importing other commands: {sideways}"


@pytest.mark.parametrize("folder", ["nnunet_ataxia", "tests", "benchmarks"])
def test_no_file_over_400_lines(folder):
    root = PACKAGE.parent / folder
    long = {str(p.relative_to(root)): n for p in root.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"files over 400 lines: {long}"


def test_layout_check_catches_an_upward_import(tmp_path):
    """The walker itself: a nested upward import and an ``from nnunet_ataxia import`` one are both reported."""
    bad = tmp_path / "nnunet_ataxia" / "io" / "bad.py"
    bad.parent.mkdir(parents=True)
    for package in ("commands", "demo"):
        (tmp_path / "nnunet_ataxia" / package).mkdir()
    bad.write_text("from nnunet_ataxia.errors import InputError\n\n\ndef f():\n"
                   "    from nnunet_ataxia.commands.evaluate import run\n    from nnunet_ataxia import demo\n"
                   "    return run, demo, InputError\n")
    assert upward_imports(tmp_path / "nnunet_ataxia") == ["nnunet_ataxia/io/bad.py:5: io imports commands",
                                                          "nnunet_ataxia/io/bad.py:6: io imports demo"]
