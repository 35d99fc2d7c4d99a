"""The packages under models/ import each other along declared edges only: a domain may import the
kits (models/text_kit, models/image_kit: shared code that registers nothing), never another domain;
a kit imports no domain and no other kit. The core (zoo/) and the data (datamodules/) import nothing
from models/."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KITS = {"text_kit", "image_kit"}
PACKAGES = sorted(p.name for p in (ROOT / "models").iterdir() if (p / "__init__.py").is_file())


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def models_imported(path: Path) -> set[str]:
    """The packages of models/ that a file imports: models.<package>[...] -> <package>."""
    return {m.split(".")[1] for m in imports(path) if m.startswith("models.") and len(m.split(".")) > 1}


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_itself_and_the_kits(package):
    allowed = {package} | (set() if package in KITS else KITS)
    wrong = {str(path.relative_to(ROOT)): sorted(models_imported(path) - allowed)
             for path in (ROOT / "models" / package).rglob("*.py") if models_imported(path) - allowed}
    assert wrong == {}


def test_the_kits_are_used_and_register_nothing():
    users = {kit: {p for p in PACKAGES if p not in KITS and any(kit in models_imported(f)
                                                                for f in (ROOT / "models" / p).rglob("*.py"))}
             for kit in KITS}
    assert users["text_kit"] >= {"dllm_code", "sentence_vae"} and users["image_kit"] >= {"image_ar", "xar"}
    for kit in KITS:
        for path in (ROOT / "models" / kit).rglob("*.py"):
            assert "register_" not in path.read_text(), path  # a kit is code to import, not a domain


@pytest.mark.parametrize("layer", ["zoo", "datamodules"])
def test_the_core_and_the_data_import_nothing_from_models(layer):
    assert not [p for p in (ROOT / layer).rglob("*.py") if any(m.split(".")[0] == "models" for m in imports(p))]
