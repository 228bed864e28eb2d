"""Every state change, as a stream: the Redis backend's opt-in events stream.

With ``backend_options={"events": True}`` each state change (``processing``,
``success``, ``failed``, ``retrying``, ``revoked``) is also appended to the capped
Redis stream ``<prefix>:events`` (the newest 10,000), for tools of your own to tail
with ``XREAD``. It is off by default: the monitor and the dashboard read counters and
indexes instead, and the stream costs two writes a task.

Run a worker, then the script (it sends three tasks and prints their entries)::

    export YADTQ_BROKER_URL=kafka://127.0.0.1:9092 YADTQ_BACKEND_URL=redis://127.0.0.1:6379/0
    yadtq worker -A examples.events_app
    python examples/events_app.py
"""

from __future__ import annotations

from typing import cast

from yadtq import YADTQ

app = YADTQ("events-example", backend_options={"events": True})


@app.task
def add(x: int, y: int) -> int:
    """Add two numbers."""
    return x + y


def main() -> None:
    """Send three tasks, wait for them, and print the stream's entries for them."""
    import redis

    from yadtq.transports.redis import EVENTS_KEY, RedisBackend

    backend = app.backend
    if not isinstance(backend, RedisBackend):
        raise SystemExit("this example needs a Redis backend: set YADTQ_BACKEND_URL=redis://...")
    results = [add.delay(i, i) for i in range(3)]
    print("results:", [r.get(timeout=30) for r in results])
    sent = {r.id for r in results}
    client = redis.Redis.from_url(app.settings.backend_url, decode_responses=True)
    entries = cast("list[tuple[str, dict[str, str]]]", client.xrange(backend.key(EVENTS_KEY)))
    for _, entry in entries:
        if entry["id"] in sent:
            print(entry["state"], entry["name"], entry["id"])
    client.close()
    app.close()


if __name__ == "__main__":
    main()
