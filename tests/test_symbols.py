"""Function names as evidence for frames without a source line (traceback text, Java, Go, …)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentry_autofix.models import StackFrame
from sentry_autofix.workspace.mapping import MapOptions, WorkspaceIndex, map_frame
from sentry_autofix.workspace.symbols import bare_name, enclosing_function, function_line, function_verdict

from .gitrepo import make_repo


@pytest.mark.parametrize(
    ("function", "name"),
    [
        ("shop.views.checkout", "checkout"),
        ("averagePrice", "averagePrice"),
        ("(*Cart).Average", "Average"),
        ("block (2 levels) in average_price", "average_price"),
        ("rescue in summary", "summary"),
        ("Shop\\Cart->averagePrice", "averagePrice"),
        ("Shop::Cart#average_price", "average_price"),
        ("lambda$main$0", "main"),
        ("<Summary>d__3", "Summary"),
        ("<module>", None),
        ("{main}", None),
        ("Object.<anonymous>", None),
        ("/", None),
        (None, None),
    ],
)
def test_bare_name__the_identifier_a_definition_spells(function: str | None, name: str | None) -> None:
    assert bare_name(function) == name


def test_function_line__definition_above_the_line_in_several_languages() -> None:
    go = ["package cart", "", "func (c *Cart) Average() int {", "\tunits := 0", "\treturn total / units", "}"]
    assert function_line(go, 5, "github.com/acme/shop/cart.(*Cart).Average") == 3
    java = [
        "class Pricing {",
        "    public static int averagePrice(List<Integer> p) {",
        "        return s / n;",
        "    }",
    ]
    assert function_line(java, 3, "averagePrice") == 2
    js = ["const lineTotal = (item) =>", "  item.qty * item.product.price;"]
    assert function_line(js, 2, "lineTotal") == 1
    assert function_line(js, 2, "cartTotal") is None, "absent names are not found"
    calls = ["def other():", "    return shop.checkout()"]
    assert function_line(calls, 2, "checkout") is None, "a method call on another object is not a definition"


def test_function_verdict__generic_names_check_nothing() -> None:
    assert function_verdict(["def main():", "    x()"], 2, "main") == (None, 2, None)
    verdict = function_verdict(["def total(c):", "    return 1 / 0"], 2, "total")
    assert verdict[0] is True and verdict[2] is not None and "total() is defined at line 1" in verdict[2]


def test_map_frame__function_name_breaks_a_tie_the_path_cannot(tmp_path: Path) -> None:
    """Flattened deploy (/srv/app/cart.go) and two cart.go in the repo: the one defining Average wins;
    without a function that tells them apart, the frame is reported ambiguous, not guessed."""
    repo = make_repo(
        tmp_path / "r",
        {
            "billing/cart.go": "package billing\n\nfunc Total() int {\n\treturn 0\n}\n",
            "shop/cart.go": "package shop\n\nfunc (c *Cart) Average() int {\n\treturn t / u\n}\n",
        },
    )
    index = WorkspaceIndex.scan(repo)
    frame = StackFrame(abs_path="/srv/app/cart.go", lineno=4, function="(*Cart).Average", platform="go")
    mapped = map_frame(frame, index, MapOptions())
    assert mapped.path == "shop/cart.go" and mapped.verified is True
    assert mapped.reason is not None and "Average() is defined at line 3" in mapped.reason
    anonymous = map_frame(frame.model_copy(update={"function": "func1"}), index, MapOptions())
    assert anonymous.path is None and (anonymous.reason or "").startswith("ambiguous: billing/cart.go, shop/cart.go")


def test_map_frame__context_line_still_decides_when_present(tmp_path: Path) -> None:
    """A frame with a source line is judged by it, as before: the function name is only a fallback."""
    repo = make_repo(tmp_path / "r", {"app/cart.py": "def total(c):\n    return 1 / 0\n"})
    frame = StackFrame(abs_path="/srv/app/cart.py", lineno=2, function="total", context_line="return 2 / 0")
    mapped = map_frame(frame, WorkspaceIndex.scan(repo), MapOptions())
    assert mapped.verified is False


def test_function_line__ruby_and_php_definitions() -> None:
    ruby = ["class Cart", "  def self.average_price", "    total / units", "  end"]
    assert function_line(ruby, 3, "Shop::Cart.average_price") == 2
    php = ["final class Cart {", "    public function averagePrice(): int", "    {", "        return 1;"]
    assert function_line(php, 4, "Shop\\Cart->averagePrice") == 2


def test_enclosing_function__names_the_def_around_a_lambda_or_comprehension() -> None:
    lines = [
        "import x",
        "",
        "class Frame:",
        "    key = lambda self: 1",
        "    async def rename(self, prefix):",
        "        if prefix:",
        "            out = self.apply(",
        "                lambda c: prefix + c)",
        "        return {k: v for k, v in out}",
    ]
    assert enclosing_function(lines, 8) == "rename"
    assert enclosing_function(lines, 9) == "rename"
    assert enclosing_function(lines, 4) is None, "a class-level lambda has no enclosing function"
    assert enclosing_function(lines, 1) is None
    assert enclosing_function(lines, 99) is None
