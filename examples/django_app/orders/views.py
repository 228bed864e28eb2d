"""``POST /orders?item=book`` places an order; its confirmation is sent when the
request's transaction commits. ``GET /orders/<id>`` shows it."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .models import Order
from .tasks import confirm_order


@csrf_exempt
@require_POST
def place_order(request: HttpRequest) -> JsonResponse:
    with transaction.atomic():
        order = Order.objects.create(item=request.GET.get("item", "book"))
        confirm_order.delay_on_commit(order.pk)  # never sent if this block rolls back
    return JsonResponse({"order": order.pk})


@require_GET
def order_status(request: HttpRequest, order_id: int) -> JsonResponse:
    order = Order.objects.get(pk=order_id)
    return JsonResponse({"order": order.pk, "item": order.item, "confirmed": order.confirmed})
