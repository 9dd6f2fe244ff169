"""docs/configuration.md lists every setting of every settings model, as the models say."""

from __future__ import annotations

import ast
from pathlib import Path

from handoff.settings_reference import BEGIN, END, MODELS, reference
from handoff.tiers import TierSettings, TierSpec

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "configuration.md"


def test_the_page_holds_the_tables_the_models_give() -> None:
    text = PAGE.read_text()
    written = text.partition(BEGIN)[2].partition(END)[0]
    assert written.strip() == reference().strip(), (
        "docs/configuration.md is stale: python -m handoff.settings_reference docs/configuration.md")


def test_every_field_and_variable_of_every_model_is_on_the_page() -> None:
    text = PAGE.read_text()
    for model in MODELS:
        fields = TierSpec.model_fields if model is TierSettings else model.model_fields
        for name in fields:
            assert f"| `{name}` |" in text, f"{model.__name__}.{name}"
            if model is not TierSettings:
                for variable in model.env_names(name):
                    assert f"`{variable}`" in text, f"{model.__name__}.{name}: {variable}"
    assert "`HANDOFF_TIER_<NAME>_MODEL`" in text


def test_every_settings_model_of_the_package_is_listed() -> None:
    """Read from the source, so a model added anywhere in handoff/ fails here until listed."""
    declared = set()
    for path in (ROOT / "handoff").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    ast.unparse(base) == "HandoffSettings" for base in node.bases):
                declared.add(node.name)
    assert declared == {m.__name__ for m in MODELS}
