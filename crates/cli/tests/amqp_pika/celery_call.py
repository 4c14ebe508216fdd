"""Sends tasks to the Celery worker and waits for each result; then pings the worker over
remote control (its pidbox queue, `celery@HOST.celery.pidbox`) and waits for its pong."""

from celery_tasks import add, app

results = [add.delay(n, n).get(timeout=30) for n in range(5)]
assert results == [2 * n for n in range(5)], results
print(f"celery: 5 task round trips with results {results}")
pongs = app.control.ping(timeout=5.0)
assert pongs and all(list(pong.values())[0] == {"ok": "pong"} for pong in pongs), pongs
print(f"celery: remote control ping answered by {[next(iter(p)) for p in pongs]}")
