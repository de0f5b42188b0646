"""Upstream changes, tried on rtcsvc without shipping them: ``bench/run --servers rtcsvc+NAME``.

docs/performance.md says which costs left in a join/leave cycle and in a relayed message's
latency belong to Twisted and Autobahn, and what would remove them. These patches emulate
those upstream changes in the benchmarked process only, so the claim is a measurement:

``write-now``
    Twisted issue #5303 ("Default transport implementation doesn't write out bytes
    immediately", open since 2011): a TCP transport's ``write()`` tries ``send()`` at once
    when nothing is buffered, as asyncio's transports do, and buffers only what the kernel
    did not take. Plain TCP only (TLS transports are left alone).
``quiet-debug``
    Autobahn guarding its debug lines: the ``hltype()``/``hlval()`` arguments of its
    ``log.debug`` calls are evaluated on every handshake and close even though debug lines
    are never emitted. Here they cost nothing (the output is unchanged: the lines are
    filtered out either way).

Python imports this module at start-up when this directory is on ``PYTHONPATH``; it applies
the patches named in ``RTCSVC_EXPERIMENTS`` (comma-separated) and nothing else.
"""

import os


def _write_now():
    from twisted.internet import abstract, tcp

    buffered_write = abstract.FileDescriptor.write

    def write(self, data):
        if (isinstance(self, tcp.Connection) and not self.TLS and self.connected
                and not self._writeDisconnected and not self._tempDataBuffer
                and self.offset == len(self.dataBuffer) and data):
            sent = self.writeSomeData(data)
            if isinstance(sent, int) and sent >= 0:  # else an error the reactor will see
                if sent == len(data):
                    return
                data = data[sent:]
        buffered_write(self, data)

    abstract.FileDescriptor.write = write


def _quiet_debug():
    import autobahn.twisted.websocket
    import autobahn.websocket.protocol

    def nothing(*args, **kwargs):
        return ""

    for module in (autobahn.websocket.protocol, autobahn.twisted.websocket):
        for name in ("hltype", "hlval", "hlid"):
            if hasattr(module, name):
                setattr(module, name, nothing)


_EXPERIMENTS = {"write-now": _write_now, "quiet-debug": _quiet_debug}

for _name in filter(None, os.environ.get("RTCSVC_EXPERIMENTS", "").split(",")):
    _EXPERIMENTS[_name]()
