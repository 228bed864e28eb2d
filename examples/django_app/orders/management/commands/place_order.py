"""``python manage.py place_order ITEM``: place an order in a transaction, send its
confirmation on commit, and wait for a worker to confirm it."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from orders.models import Order
from orders.tasks import confirm_order


class Command(BaseCommand):
    help = "Place an order; a yadtq worker confirms it once the transaction has committed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("item")
        parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the worker")

    def handle(self, *args: Any, **options: Any) -> None:
        task_id = uuid.uuid4().hex
        with transaction.atomic():
            order = Order.objects.create(item=options["item"])
            confirm_order.apply_async_on_commit((order.pk,), task_id=task_id)
        self.stdout.write(f"order {order.pk} placed; confirmation task {task_id} sent on commit")
        message = confirm_order.app.AsyncResult(task_id).get(timeout=options["wait"])
        order.refresh_from_db()
        self.stdout.write(f"{message} (confirmed in the database: {order.confirmed})")
