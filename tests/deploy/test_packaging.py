"""What the distribution declares and ships, and that no deploy file carries a secret."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
META = PROJECT["project"]
PACKAGES = ["daemon", "protocol", "clients"]


def test_the_licence_is_mit_and_ships_with_the_distribution() -> None:
    assert META["license"] == "MIT"
    assert META["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 Switchboard authors" in text
    # PEP 639: a licence expression replaces licence classifiers (setuptools refuses both).
    assert not [c for c in META["classifiers"] if c.startswith("License ::")]
    assert PROJECT["build-system"]["requires"] == ["setuptools>=77"]


def test_every_package_is_marked_typed_and_ships_the_marker() -> None:
    package_data = PROJECT["tool"]["setuptools"]["package-data"]
    for package in PACKAGES:
        assert (ROOT / package / "py.typed").is_file(), package
        assert "py.typed" in package_data[package], package
    assert "Typing :: Typed" in META["classifiers"]


def test_the_metadata_describes_the_project_without_placeholders() -> None:
    assert META["keywords"]
    assert META["authors"] == [{"name": "Switchboard authors"}]
    supported = {c.rsplit(" :: ", 1)[1] for c in META["classifiers"] if "Python :: 3." in c}
    assert supported == {"3.11"}  # what CI runs; matches requires-python's floor
    assert META["requires-python"] == ">=3.11"
    # No repository URL is known, and an invented one would mislead: none is declared.
    assert "urls" not in META


def test_the_deploy_validation_tools_are_in_the_test_extra() -> None:
    extra = " ".join(META["optional-dependencies"]["test"])
    assert "kubernetes-validate" in extra
    assert "PyYAML" in extra


def test_no_deploy_file_sets_a_secret() -> None:
    """Issue 11: the deploy files set `change-me` secrets. None may set any."""
    placeholder = re.compile(r"change.?me", re.IGNORECASE)
    assignment = re.compile(r"SWITCHBOARD_\w*(?:SECRET|TOKEN)[ \t]*[=:][ \t]*(\S*)")
    for path in sorted((ROOT / "deploy").rglob("*")):
        if not path.is_file():
            continue
        text = path.read_text()
        assert not placeholder.search(text), path
        for m in assignment.finditer(text):
            assert m[1] == "", f"{path}: {m[0]}"
