"""The orders app's tasks (found by ``app.autodiscover_tasks()``)."""

from __future__ import annotations

from shop.yadtq_app import app

from .models import Order


@app.task
def confirm_order(order_id: int) -> str:
    """Confirm an order. It is sent with ``delay_on_commit``, so the row is always there."""
    order = Order.objects.get(pk=order_id)
    order.confirmed = True
    order.save(update_fields=["confirmed"])
    return f"order {order.pk} ({order.item}) confirmed"
