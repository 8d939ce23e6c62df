from shop.cart import Cart, average_item_price
from shop.views import cart_summary


def test_total():
    cart = Cart()
    cart.add("apple", 0.5, 4)
    cart.add("pear", 1.25)
    assert cart.total() == 3.25


def test_average_item_price():
    cart = Cart()
    cart.add("apple", 0.5, 4)
    cart.add("melon", 3.0)
    assert average_item_price(cart) == 1.0


def test_cart_summary():
    cart = Cart()
    cart.add("melon", 3.0)
    assert cart_summary(cart) == {"items": 1, "total": 3.0, "average_price": 3.0}
