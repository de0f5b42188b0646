"""rtcsvc: a WebRTC video-chat service and its signaling relay, run by twistd."""

__version__ = "0.1.0"
