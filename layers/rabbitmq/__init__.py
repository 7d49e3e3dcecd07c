"""RabbitMQ backend: aio-pika, one inbox queue per layer instance, real queues for normal channels.

Where the design had to choose (DESIGN.md section 4 says little of these):

* Per-channel capacity. A normal channel is its own queue, so capacity is the broker's
  ``x-max-length`` with ``reject-publish``, and a nacked confirm is ChannelFull for any
  sender. Process-local channels share their process's inbox queue, so the broker
  cannot count them one by one: a send from the owning layer to its own channel is
  checked exactly (it never leaves the process), and a send from another process is
  checked when the owner's inbox consumer buffers it; over capacity it is dropped and
  counted as ``dropped_full`` in the owner's stats, not raised at the sender.
* Group members of a process: a table in that process (inbox.py), filled directly for
  its own channels and by a control message on its inbox for a peer's group_add.
* group_channels without the management plugin: a record queue per group (registry.py).
* Unroutable sends (a process channel whose process is gone) are found by mandatory
  publishing, logged and counted as ``dropped_unroutable``; send() does not raise.
* Expiry: per-queue TTL plus a deadline check on receive; what the broker expires is
  dead-lettered back to the sender's inbox and counted there as ``dropped_expired``.
"""

from .layer import RabbitMQChannelLayer

__all__ = ["RabbitMQChannelLayer"]
