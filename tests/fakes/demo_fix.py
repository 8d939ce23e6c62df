"""Scripted turns that fix the demo shop (examples/demo): the empty cart's ZeroDivisionError.

What a competent model does: read the crashing frame, add a regression test, see it fail, fix the
division, see the suite pass, finish. Reused by the agent tests and bench/agent_overhead.py.
"""

from __future__ import annotations

from tests.fakes.script import Call, Reply, Step, finish, tool

REGRESSION_TEST_PATH = "tests/test_empty_cart.py"
REGRESSION_TEST = (
    "from shop.cart import Cart, average_item_price\n\n\n"
    "def test_average_item_price_of_empty_cart():\n"
    "    assert average_item_price(Cart()) == 0.0\n"
)
OLD = "    units = sum(i.quantity for i in cart.items)\n    return round(cart.total() / units, 2)\n"
NEW = (
    "    units = sum(i.quantity for i in cart.items)\n"
    "    if not units:\n"
    "        return 0.0\n"
    "    return round(cart.total() / units, 2)\n"
)


def fix_steps() -> list[Step]:
    return [
        Reply(text="The crash is in average_item_price.", calls=[Call("read_file", {"path": "shop/cart.py"})]),
        tool("write_file", path=REGRESSION_TEST_PATH, content=REGRESSION_TEST),
        tool("run_tests"),
        tool("edit_file", path="shop/cart.py", old_text=OLD, new_text=NEW),
        tool("run_tests"),
        finish(),
    ]
