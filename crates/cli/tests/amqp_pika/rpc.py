"""aio-pika request-reply against Wharf's AMQP door: a server consumes `rpc` and answers each
request on its reply_to queue with its correlation id; a client makes an exclusive
server-named callback queue and awaits 20 answers. Usage: rpc.py AMQP_PORT"""

import asyncio
import sys
import uuid

import aio_pika

URL = f"amqp://guest:guest@127.0.0.1:{sys.argv[1]}/"


async def serve(connection):
    channel = await connection.channel()
    queue = await channel.declare_queue("rpc")

    async def answer(message: aio_pika.abc.AbstractIncomingMessage):
        async with message.process():
            n = int(message.body)
            reply = aio_pika.Message(str(n * n).encode(), correlation_id=message.correlation_id)
            await channel.default_exchange.publish(reply, routing_key=message.reply_to)

    await queue.consume(answer)


async def call(connection, count):
    channel = await connection.channel()
    callback = await channel.declare_queue("", exclusive=True)
    pending = {}

    async def on_reply(message: aio_pika.abc.AbstractIncomingMessage):
        future = pending.pop(message.correlation_id, None)
        if future is not None:
            future.set_result(int(message.body))

    await callback.consume(on_reply, no_ack=True)
    loop = asyncio.get_running_loop()
    results = []
    for n in range(count):
        correlation_id = str(uuid.uuid4())
        pending[correlation_id] = loop.create_future()
        request = aio_pika.Message(str(n).encode(), correlation_id=correlation_id,
                                   reply_to=callback.name)
        await channel.default_exchange.publish(request, routing_key="rpc")
        results.append(await asyncio.wait_for(pending[correlation_id], timeout=10))
    return results


async def main():
    server = await aio_pika.connect_robust(URL)
    client = await aio_pika.connect(URL)
    await serve(server)
    results = await call(client, 20)
    assert results == [n * n for n in range(20)], results
    await client.close()
    await server.close()
    print("aio-pika: 20 RPC round trips through reply_to and correlation_id")


asyncio.run(main())
