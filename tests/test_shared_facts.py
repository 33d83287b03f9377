"""Shared facts (label values, atlas label ids, seed offsets, minimum sizes, the WMH channel layout) have one home,
``nnunet_ataxia.io.constants``: no other module of the package defines them again."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import nnunet_ataxia
from nnunet_ataxia.io import constants

PACKAGE = Path(nnunet_ataxia.__file__).resolve().parent
HOME = PACKAGE / "io" / "constants.py"
FACTS = {name: value for name, value in vars(constants).items() if name.isupper() and not name.startswith("_")}
#: values that a literal elsewhere could repeat (numbers alone are too common to mean a fact)
FACT_VALUES = {name: value for name, value in FACTS.items() if isinstance(value, (dict, tuple))}


def _module_level_assignments(tree: ast.Module) -> list[tuple[str, ast.expr | None, int]]:
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = [t for target in node.targets for t in (target.elts if isinstance(target, ast.Tuple) else
                                                               [target])]
            values = (node.value.elts if isinstance(node.value, ast.Tuple) and len(node.targets) == 1
                      and isinstance(node.targets[0], ast.Tuple) else [node.value] * len(targets))
            found += [(t.id, v, node.lineno) for t, v in zip(targets, values, strict=False) if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found.append((node.target.id, node.value, node.lineno))
    return found


def _literal(node: ast.expr | None):
    if not isinstance(node, (ast.Dict, ast.Tuple)):
        return None
    try:
        return ast.literal_eval(node)
    except ValueError:  # names or calls inside: not a literal
        return None


def redefinitions(source: str, where: str = "<module>") -> list[str]:
    """Module-level names of ``source`` that are a fact's name, or a dict/tuple literal equal to a fact's value."""
    problems = []
    for name, value, line in _module_level_assignments(ast.parse(source)):
        if name in FACTS:
            problems.append(f"{where}:{line}: defines {name} (import it from nnunet_ataxia.io.constants)")
            continue
        literal = _literal(value)
        same = [fact for fact, fact_value in FACT_VALUES.items()
                if literal is not None and type(literal) is type(fact_value) and literal == fact_value]
        if same:
            problems.append(f"{where}:{line}: {name} repeats {same[0]} (import it from nnunet_ataxia.io.constants)")
    return problems


def test_the_facts_are_there():
    assert constants.CEREBELLUM_BRAINSTEM_LABELS == {"background": 0, "cerebellum": 1, "brainstem": 2}
    assert constants.CEREBELLUM_LABELS_ASEG == (7, 8, 46, 47) and constants.BRAINSTEM_LABEL_ASEG == 16
    assert set(constants.CEREBELLUM_LABELS_ASEG) == (set(constants.CEREBELLUM_WHITE_MATTER_LABELS_ASEG)
                                                     | set(constants.CEREBELLUM_CORTEX_LABELS_ASEG))
    offsets = [constants.VALIDATION_SEED_OFFSET, constants.HELD_OUT_SEED_OFFSET, constants.CONTRAST_SEED_OFFSET]
    assert offsets == sorted(set(offsets))  # one seed range per use, none shared
    # the WMH layout: image channels first, then the eight location channels
    assert constants.WMH_LOCATION_CHANNEL_INDICES == tuple(range(2, 10))
    assert constants.WMH_FLAIR_ONLY_LOCATION_CHANNEL_INDICES == tuple(range(1, 9))
    assert constants.WMH_LOCATION_CHANNEL_NAMES[-1] == "wmh_prior"


@pytest.mark.parametrize("source, culprit", [
    ("LABELS = {'background': 0, 'cerebellum': 1, 'brainstem': 2}\n", "repeats CEREBELLUM_BRAINSTEM_LABELS"),
    ("CEREB: tuple = (7, 8, 46, 47)\n", "repeats CEREBELLUM_LABELS_ASEG"),
    ("CONTRAST_SEED_OFFSET = 200_000\n", "defines CONTRAST_SEED_OFFSET"),
    ("A, WMH_LABELS = 1, {}\n", "defines WMH_LABELS"),
])
def test_the_check_finds_a_redefinition(source, culprit):
    [problem] = redefinitions(source)
    assert culprit in problem


@pytest.mark.parametrize("source", [
    "from nnunet_ataxia.io.constants import CONTRAST_SEED_OFFSET\n",
    "LABELS = dict(CEREBELLUM_BRAINSTEM_LABELS)\n",
    "VALUES = (7, 8, 46)\n",  # not a fact's value
    "def f():\n    labels = {'background': 0, 'cerebellum': 1, 'brainstem': 2}\n",  # not module level
])
def test_the_check_leaves_imports_and_other_values_alone(source):
    assert redefinitions(source) == []


def test_no_module_defines_a_shared_fact_again():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path != HOME:
            problems += redefinitions(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE.parent)))
    assert problems == []


def test_old_public_names_are_the_one_definition():
    from nnunet_ataxia.dataset_conversion import Dataset510_SynthCerebellumBrainstem as dataset510
    from nnunet_ataxia.demo import anatomy
    from nnunet_ataxia.synthesis import synthetic_subjects

    assert dataset510.HELD_OUT_SEED_OFFSET is constants.HELD_OUT_SEED_OFFSET
    assert dataset510.CONTRAST_SEED_OFFSET is constants.CONTRAST_SEED_OFFSET
    # one subject generator: the demo draws its subjects with the synthesis module's functions
    assert anatomy.draw_subject is synthetic_subjects.draw_subject
