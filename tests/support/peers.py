"""A stand-in for a client connection, for tests of the hubs without sockets."""

import orjson
from twisted.internet import defer
from zope.interface import implementer

from rtcsvc.hub import IPeerConnection


@implementer(IPeerConnection)
class RecordingConnection:
    """Keeps what a hub sends it: ``payloads`` as written, ``received`` decoded, and the hub's
    answer to a join in ``answer`` (a Deferred: the JoinResult, or the Refusal as a failure)."""

    def __init__(self):
        self.payloads = []
        self.received = []
        self.superseded = False
        self.answer = defer.Deferred()

    def send(self, payload):
        self.payloads.append(payload)
        self.received.append(orjson.loads(payload))

    def supersede(self):
        self.superseded = True

    def seated(self, result):
        self.answer.callback(result)

    def refused(self, reason):
        self.answer.errback(reason)

    def of_type(self, kind):
        return [m for m in self.received if m["type"] == kind]


def joining(hub, room, connection=None, resume_token=None, *, resume_only=False):
    """Ask ``hub`` to seat ``connection``; a Deferred with the answer."""
    connection = connection if connection is not None else RecordingConnection()
    if resume_only:
        hub.resume(room, connection, resume_token)
    else:
        hub.join(room, connection, resume_token)
    return connection.answer


def join(hub, room, connection=None, resume_token=None, *, resume_only=False):
    """The answer of a hub that answers at once: the JoinResult, or the Refusal raised."""
    answer = joining(hub, room, connection, resume_token, resume_only=resume_only)
    outcome = []
    answer.addBoth(outcome.append)
    assert outcome, "the hub did not answer at once"
    if isinstance(outcome[0], defer.Failure):
        outcome[0].raiseException()
    return outcome[0]
