"""A Celery app on Wharf's AMQP door, results over the rpc:// backend, with Celery's defaults
otherwise: remote control is on, so the worker declares its `celery@HOST.celery.pidbox` queue
and answers the client's ping through it."""

import os

from celery import Celery

app = Celery("celery_tasks", broker=os.environ["BROKER"], backend="rpc://")
app.conf.broker_connection_retry_on_startup = True


@app.task
def add(x, y):
    return x + y
