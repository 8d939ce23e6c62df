"""Frames with deployed paths land on the right workspace file — or are reported unmapped."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentry_autofix.models import StackFrame
from sentry_autofix.sources.sentry_event import parse_event
from sentry_autofix.workspace.guard import PathGuard
from sentry_autofix.workspace.mapping import MapOptions, WorkspaceIndex, map_event, map_frame, normalize

from .conftest import load_shared
from .gitrepo import make_repo

NO_OPTIONS = MapOptions()


def _index(tmp_path: Path, files: dict[str, str]) -> WorkspaceIndex:
    return WorkspaceIndex.scan(make_repo(tmp_path / "repo", files))


@pytest.mark.parametrize(
    ("raw", "parts"),
    [
        ("/srv/app/shop/cart.py", ["srv", "app", "shop", "cart.py"]),
        ("webpack:///./src/components/App.tsx", ["src", "components", "App.tsx"]),
        ("webpack://my-app/./src/index.js?abc", ["my-app", "src", "index.js"]),
        ("app:///dist/main.js", ["dist", "main.js"]),
        ("https://cdn.example.com/static/js/main.js#x", ["static", "js", "main.js"]),
        ("C:\\build\\Web\\Controllers\\HomeController.cs", ["build", "Web", "Controllers", "HomeController.cs"]),
        ("../../sentry/scripts/views.js", ["sentry", "scripts", "views.js"]),
        ("~/src/app.rb", ["src", "app.rb"]),
    ],
)
def test_normalize__strips_schemes_hosts_drives_and_dots(raw: str, parts: list[str]) -> None:
    assert normalize(raw) == parts


@pytest.mark.parametrize(
    ("files", "frame", "expected"),
    [
        # Python app deployed under /srv/…/releases/<version>/
        (
            {"shop/cart.py": "x\n", "shop/views.py": "y\n"},
            StackFrame(abs_path="/srv/shop/releases/1.4.0/shop/cart.py", filename="shop/cart.py", lineno=1),
            "shop/cart.py",
        ),
        # src-layout package installed into site-packages (the SDK says in_app: false)
        (
            {"src/mypkg/core.py": "a\n", "src/mypkg/__init__.py": ""},
            StackFrame(
                abs_path="/opt/venv/lib/python3.12/site-packages/mypkg/core.py",
                filename="mypkg/core.py",
                in_app=False,
                lineno=1,
            ),
            "src/mypkg/core.py",
        ),
        # repo root deployed at /app: only the file name remains, and that is the whole repo path
        ({"main.py": "m\n"}, StackFrame(abs_path="/app/main.py", filename="main.py", in_app=True), "main.py"),
        # JavaScript through webpack and through app:/// (Electron / React Native)
        (
            {"web/src/components/Cart.tsx": "c\n", "web/package.json": "{}"},
            StackFrame(abs_path="webpack:///./src/components/Cart.tsx", filename="./src/components/Cart.tsx"),
            "web/src/components/Cart.tsx",
        ),
        (
            {"src/main.js": "m\n"},
            StackFrame(abs_path="app:///src/main.js", filename="app:///src/main.js", in_app=True),
            "src/main.js",
        ),
        # Java / Kotlin: the package comes from the module (class name), the file from `filename`
        (
            {"service/src/main/java/io/shop/api/CartController.java": "j\n"},
            StackFrame(filename="CartController.java", module="io.shop.api.CartController", in_app=True),
            "service/src/main/java/io/shop/api/CartController.java",
        ),
        (
            {"app/src/main/kotlin/io/shop/Checkout.kt": "k\n"},
            StackFrame(filename="Checkout.kt", module="io.shop.Checkout$Companion", in_app=True),
            "app/src/main/kotlin/io/shop/Checkout.kt",
        ),
        # Go: module path + go.mod's module name
        (
            {"go.mod": "module github.com/acme/shop\n\ngo 1.22\n", "internal/cart/cart.go": "package cart\n"},
            StackFrame(
                abs_path="/home/runner/work/shop/shop/internal/cart/cart.go",
                filename="cart.go",
                module="github.com/acme/shop/internal/cart",
                in_app=True,
            ),
            "internal/cart/cart.go",
        ),
        (
            {"go.mod": "module github.com/acme/shop\n", "internal/cart/cart.go": "package cart\n"},
            StackFrame(filename="cart.go", module="github.com/acme/shop/internal/cart", in_app=True),
            "internal/cart/cart.go",
        ),
        # PHP under /var/www/html, Ruby under /app, .NET with Windows paths
        (
            {"src/Controller/CartController.php": "<?php\n"},
            StackFrame(abs_path="/var/www/html/src/Controller/CartController.php", in_app=True),
            "src/Controller/CartController.php",
        ),
        (
            {"app/models/cart.rb": "class Cart\n"},
            StackFrame(abs_path="/app/app/models/cart.rb", filename="app/models/cart.rb", in_app=True),
            "app/models/cart.rb",
        ),
        (
            {"samples/Shop.Web/Controllers/HomeController.cs": "class H {}\n"},
            StackFrame(
                filename="C:\\agent\\_work\\1\\s\\samples\\Shop.Web\\Controllers\\HomeController.cs", in_app=True
            ),
            "samples/Shop.Web/Controllers/HomeController.cs",
        ),
    ],
)
def test_map_frame__deployment_layouts(tmp_path: Path, files: dict[str, str], frame: StackFrame, expected: str) -> None:
    mapped = map_frame(frame, _index(tmp_path, files), NO_OPTIONS)
    assert mapped.path == expected, mapped.reason
    assert mapped.in_app


def test_map_frame__library_frame_never_lands_on_a_same_named_repo_file(tmp_path: Path) -> None:
    index = _index(tmp_path, {"app.py": "x\n", "utils/decoder.py": "y\n"})
    flask = StackFrame(abs_path="/usr/lib/python3/site-packages/flask/app.py", in_app=False, lineno=1)
    stdlib = StackFrame(abs_path="/usr/lib/python3.11/json/decoder.py", in_app=False, lineno=1)
    for frame in (flask, stdlib):
        mapped = map_frame(frame, index, NO_OPTIONS)
        assert mapped.path is None and mapped.reason is not None and "not confirmed" in mapped.reason


def test_map_frame__ambiguity_resolved_by_context_line(tmp_path: Path) -> None:
    files = {
        "services/a/handlers.py": "def h():\n    return 1 / 0\n",
        "services/b/handlers.py": "def h():\n    return None\n",
    }
    index = _index(tmp_path, files)
    frame = StackFrame(abs_path="/srv/handlers.py", lineno=2, context_line="    return 1 / 0", in_app=True)
    mapped = map_frame(frame, index, NO_OPTIONS)
    assert mapped.path == "services/a/handlers.py" and mapped.verified is True


def test_map_frame__unresolvable_ambiguity_is_reported_not_guessed(tmp_path: Path) -> None:
    index = _index(tmp_path, {"a/handlers.py": "x\n", "b/handlers.py": "x\n"})
    mapped = map_frame(StackFrame(abs_path="/srv/handlers.py", lineno=1, in_app=True), index, NO_OPTIONS)
    assert mapped.path is None and mapped.reason is not None and mapped.reason.startswith("ambiguous")


def test_map_frame__source_roots_break_monorepo_ties(tmp_path: Path) -> None:
    index = _index(tmp_path, {"api/app/models.py": "x\n", "worker/app/models.py": "x\n"})
    frame = StackFrame(abs_path="/srv/app/models.py", lineno=1, in_app=True)
    mapped = map_frame(frame, index, MapOptions(source_roots=("worker",)))
    assert mapped.path == "worker/app/models.py"


def test_map_frame__prefix_map_rewrites_deployed_prefix(tmp_path: Path) -> None:
    index = _index(tmp_path, {"services/api/main.py": "x\n", "services/admin/main.py": "x\n"})
    frame = StackFrame(abs_path="/srv/app/main.py", lineno=1, in_app=True)
    mapped = map_frame(frame, index, MapOptions(prefix_map=(("/srv/app/", "services/api/"),)))
    assert mapped.path == "services/api/main.py"


def test_map_frame__line_drift_is_corrected_with_context_line(tmp_path: Path) -> None:
    body = "".join(f"line{i}\n" for i in range(1, 40)) + "    total = price / qty\n"
    index = _index(tmp_path, {"shop/cart.py": body})
    frame = StackFrame(abs_path="/srv/shop/cart.py", lineno=30, context_line="    total = price / qty", in_app=True)
    mapped = map_frame(frame, index, NO_OPTIONS)
    assert mapped.line == 40 and mapped.verified is True and mapped.reason is not None


def test_map_frame__vendored_copy_is_not_in_app(tmp_path: Path) -> None:
    index = _index(tmp_path, {"node_modules/lodash/lodash.js": "x\n", "src/app.js": "y\n"})
    frame = StackFrame(abs_path="webpack:///./node_modules/lodash/lodash.js", lineno=1)
    mapped = map_frame(frame, index, NO_OPTIONS)
    assert mapped.path == "node_modules/lodash/lodash.js" and not mapped.in_app


@pytest.mark.conformance
def test_map_event__real_fixtures_onto_matching_layouts(tmp_path: Path) -> None:
    cases = [
        (
            "sentry/events/go-pkg-mod.json",
            {"go.mod": "module example.com/my_app\n", "main.go": "package main\n"},
            "main.go",
        ),
        (
            "sentry/events/java.json",
            {"src/main/java/io/sentry/example/Application.java": "class A {}\n"},
            "src/main/java/io/sentry/example/Application.java",
        ),
        (
            "sentry/events/dotnet-aspnetcore-chained.json",
            {"samples/Sentry.Samples.AspNetCore.Mvc/Controllers/HomeController.cs": "class H {}\n"},
            "samples/Sentry.Samples.AspNetCore.Mvc/Controllers/HomeController.cs",
        ),
        (
            "sentry/events/javascript.json",
            {"src/sentry/static/sentry/scripts/views.js": "var x;\n"},
            "src/sentry/static/sentry/scripts/views.js",
        ),
        ("sentry/events/php.json", {"bin/raven": "<?php\n"}, "bin/raven"),
        ("sentry/events/ruby.json", {"lib/raven/cli.rb": "module Raven\n"}, "lib/raven/cli.rb"),
        ("sentry/events/python-modern.json", {"main.py": "def main():\n"}, "main.py"),
        ("sentry/events/node-legacy-raven-exception.json", {"tmp/main.js": "x\n"}, "tmp/main.js"),
        (
            "sentry/events/java-chained-exception-in-app.json",
            {"app/src/main/java/com/example/MainActivity.java": "class M {}\n"},
            "app/src/main/java/com/example/MainActivity.java",
        ),
    ]
    for i, (fixture, files, expected) in enumerate(cases):
        event = parse_event(load_shared(fixture))
        index = WorkspaceIndex.scan(make_repo(tmp_path / f"r{i}", files))
        paths = {m.path for m in map_event(event, index, NO_OPTIONS)}
        assert expected in paths, fixture


def test_workspace_index__repo_without_commits_and_plain_folder(tmp_path: Path) -> None:
    from .gitrepo import git

    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "app.py").write_text("x\n")
    (repo / "scratch.py").write_text("untracked\n")
    git(repo, "add", "app.py")
    assert WorkspaceIndex.scan(repo).files == ["app.py"]  # tracked files only, by default
    assert WorkspaceIndex.scan(repo, PathGuard(repo, (), read_untracked=True)).files == ["app.py", "scratch.py"]
    plain = tmp_path / "plain"
    (plain / "pkg").mkdir(parents=True)
    (plain / "pkg" / "mod.py").write_text("y\n")
    (plain / "node_modules").mkdir()
    (plain / "node_modules" / "dep.js").write_text("z\n")
    assert WorkspaceIndex.scan(plain).files == ["pkg/mod.py"]
