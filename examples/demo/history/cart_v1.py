"""Shopping cart arithmetic."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Item:
    sku: str
    price: float
    quantity: int = 1


@dataclass
class Cart:
    items: list[Item] = field(default_factory=list)

    def add(self, sku: str, price: float, quantity: int = 1) -> None:
        self.items.append(Item(sku, price, quantity))

    def total(self) -> float:
        return round(sum(i.price * i.quantity for i in self.items), 2)


def average_item_price(cart: Cart) -> float:
    """Mean price per unit in the cart, for the basket analytics panel."""
    units = sum(i.quantity for i in cart.items)
    return round(cart.total() / units, 2) if units else 0.0
