"""The IPC backend: the processes of one host share channels through shared memory."""

from .layer import IPCChannelLayer

__all__ = ["IPCChannelLayer"]
