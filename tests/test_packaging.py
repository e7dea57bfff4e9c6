"""The two install lists agree: requirements.txt (what a Space installs) pins the runtime only,
each pin inside the range pyproject.toml declares; the test tools live in the `test` extra; and
CI runs exactly the README's install and test commands."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.paths import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def declared(requirements: list[str]) -> dict[str, Requirement]:
    return {canonicalize_name(req.name): req for req in map(Requirement, requirements)}


def pins() -> dict[str, Version]:
    """name -> version of each `name==version` line of requirements.txt (comments skipped)."""
    found = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"{line!r} is not pinned"
            found[canonicalize_name(requirement.name)] = Version(specifier.version)
    return found


def test_every_runtime_dependency_is_pinned_inside_its_declared_range():
    runtime = declared(PROJECT["dependencies"])
    pinned = pins()
    assert set(pinned) == set(runtime)
    outside = {name: str(version) for name, version in pinned.items()
               if not runtime[name].specifier.contains(version, prereleases=True)}
    assert outside == {}


def test_the_space_installs_no_test_tools():
    tools = set(declared(PROJECT["optional-dependencies"]["test"])) - set(declared(PROJECT["dependencies"]))
    assert {"pytest", "playwright", "hypothesis", "librosa"} <= tools
    assert not tools & set(pins())


def test_the_python_version_is_the_one_the_code_and_the_space_use():
    assert PROJECT["requires-python"] == ">=3.11"  # tomllib
    front_matter = (REPO / "README.md").read_text().split("---")[1]
    assert re.search(r'^python_version: "3\.1[1-9]"$', front_matter, re.MULTILINE)


def readme_command(section: str) -> str:
    """The first command of the README's fenced block under `## <section>`."""
    text = (REPO / "README.md").read_text().split(f"## {section}\n", 1)[1]
    return text.split("```bash\n", 1)[1].split("\n", 1)[0].split("#", 1)[0].strip()


def test_ci_runs_exactly_the_readme_commands():
    install, test = readme_command("Set up"), readme_command("Test")
    assert install == 'pip install -e ".[test]"' and test == "python -m pytest"
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert install in ci and test in ci
