"""The twistd drop-in: makes ``twistd rtcsvc`` find rtcsvc.tap."""

from twisted.application.service import ServiceMaker

rtcsvc = ServiceMaker(
    "rtcsvc",
    "rtcsvc.tap",
    "WebRTC video chat: the web app and its signaling relay over TLS",
    "rtcsvc",
)
