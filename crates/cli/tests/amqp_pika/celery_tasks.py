"""A Celery app on Wharf's AMQP door, results over the rpc:// backend. Remote control is off:
its pidbox queue is named `celery@HOST.celery.pidbox`, and `@` is not in Wharf's names."""

import os

from celery import Celery

app = Celery("celery_tasks", broker=os.environ["BROKER"], backend="rpc://")
app.conf.broker_connection_retry_on_startup = True
app.conf.worker_enable_remote_control = False


@app.task
def add(x, y):
    return x + y
