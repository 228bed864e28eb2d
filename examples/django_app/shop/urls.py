from __future__ import annotations

from django.urls import path
from orders.views import order_status, place_order

urlpatterns = [
    path("orders", place_order),
    path("orders/<int:order_id>", order_status),
]
