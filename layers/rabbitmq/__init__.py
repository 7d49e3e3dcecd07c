"""RabbitMQ backend: aio-pika, one inbox queue per process, real queues for normal channels."""

from .layer import RabbitMQChannelLayer

__all__ = ["RabbitMQChannelLayer"]
