"""Request handlers of the shop."""

from __future__ import annotations

from shop.cart import Cart, average_item_price


def cart_summary(cart: Cart) -> dict[str, float | int]:
    """JSON body of GET /cart/summary."""
    return {
        "items": len(cart.items),
        "total": cart.total(),
        "average_price": average_item_price(cart),
    }
