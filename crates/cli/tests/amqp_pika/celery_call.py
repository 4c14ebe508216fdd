"""Sends tasks to the Celery worker and waits for each result."""

from celery_tasks import add

results = [add.delay(n, n).get(timeout=30) for n in range(5)]
assert results == [2 * n for n in range(5)], results
print(f"celery: 5 task round trips with results {results}")
