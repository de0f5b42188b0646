"""A stand-in for a client connection, for tests of the hubs without sockets."""

import orjson
from zope.interface import implementer

from rtcsvc.hub import IPeerConnection


@implementer(IPeerConnection)
class RecordingConnection:
    """Keeps what a hub sends it: ``payloads`` as written, ``received`` decoded."""

    def __init__(self):
        self.payloads = []
        self.received = []
        self.superseded = False

    def send(self, payload):
        self.payloads.append(payload)
        self.received.append(orjson.loads(payload))

    def supersede(self):
        self.superseded = True

    def of_type(self, kind):
        return [m for m in self.received if m["type"] == kind]
