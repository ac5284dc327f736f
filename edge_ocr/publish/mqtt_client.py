"""The paho client, built from the broker's plain settings: protocol, credentials, TLS, Last Will.

Only construction lives here; callbacks, threads and what is published belong to
``publish.MqttPublisher``.

MQTT 5 first: its PUBACK carries a reason code, so a broker refusing a message (an ACL, a quota)
says so instead of acknowledging it silently, and its CONNACK says how large a packet it takes.
A broker that only speaks 3.1.1 refuses the MQTT 5 CONNECT; :func:`fall_back_to_311` then switches
the client, and the next attempt speaks 3.1.1.
"""

from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from .outbox import NewMessage

log = logging.getLogger(__name__)

# CONNACK codes a 3.1.1-only broker answers an MQTT 5 CONNECT with: 1 in 3.1.1's numbering
# ("unacceptable protocol version"), 0x84 in MQTT 5's ("unsupported protocol version").
_PROTOCOL_REFUSED = (1, 0x84)


@dataclass(frozen=True)
class Broker:
    """Where and how to connect (``stages.broker`` makes it from the ``mqtt`` section). The
    password is looked up again before every connection attempt (:meth:`password_now`), so
    ``password_file`` is the file's path, read then, not its content."""

    host: str
    port: int
    client_id: str
    keepalive_s: int
    reconnect_min_s: float  # back-off between connection attempts
    reconnect_max_s: float
    username: str | None
    password: str | None  # written in the config itself
    password_file: str | None
    tls: bool
    ca_file: str | None  # None: the system's CAs
    cert_file: str | None  # with key_file: a client certificate (mutual TLS)
    key_file: str | None
    tls_insecure: bool  # skip the host name check

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def password_now(self) -> str | None:
        """The password from (in order) the config, ``password_file``, ``$EDGE_OCR_MQTT_PASSWORD``,
        or ``$CREDENTIALS_DIRECTORY/mqtt_password`` (systemd ``LoadCredential=``), read now.

        Raises:
            OSError: ``password_file`` cannot be read.
        """
        if self.password:
            return self.password
        if self.password_file:
            return Path(self.password_file).read_text(encoding="utf-8").strip()
        env = os.environ.get("EDGE_OCR_MQTT_PASSWORD")
        if env:
            return env
        cred = os.environ.get("CREDENTIALS_DIRECTORY")
        if cred and (Path(cred) / "mqtt_password").is_file():
            return (Path(cred) / "mqtt_password").read_text(encoding="utf-8").strip()
        return None


def make_client(broker: Broker, will: NewMessage) -> paho.Client:
    """A paho 2.x client (MQTT 5, clean start) with auth, TLS and the Last Will set.

    Raises:
        OSError: ``mqtt.password_file`` or a TLS file cannot be read.
        ssl.SSLError: a TLS file is not a certificate or key.
    """
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=broker.client_id, protocol=paho.MQTTv5)
    if broker.tls:
        # Our own context rather than tls_set(): it stays reachable, so refresh_credentials can
        # load renewed certificate files into it before a reconnect.
        client.tls_set_context(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
        if broker.tls_insecure:
            client.tls_insecure_set(True)
    refresh_credentials(client, broker)
    client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    client.reconnect_delay_set(broker.reconnect_min_s, broker.reconnect_max_s)  # type: ignore[arg-type]
    return client


def refresh_credentials(client: paho.Client, broker: Broker) -> None:
    """(Re)read the password and the TLS files into ``client``; they apply from its next connect.

    Called before every reconnect, so a password or certificate changed on disk is used without
    a restart.

    Raises:
        OSError: a file cannot be read.
        ssl.SSLError: a TLS file is not a certificate or key.
    """
    if broker.username:
        client.username_pw_set(broker.username, broker.password_now())
    ctx = client._ssl_context if broker.tls else None  # set by make_client; paho has no getter
    if ctx is None:
        return
    if broker.ca_file:
        ctx.load_verify_locations(cafile=broker.ca_file)
    else:
        ctx.load_default_certs()
    if broker.cert_file:
        ctx.load_cert_chain(broker.cert_file, broker.key_file)


def fall_back_to_311(client: paho.Client, reason: ReasonCode) -> bool:
    """If ``reason`` is a 3.1.1-only broker refusing MQTT 5, switch ``client`` to 3.1.1 (clean
    session) for its next attempt and return True."""
    if client.protocol != paho.MQTTv5 or reason.value not in _PROTOCOL_REFUSED:
        return False
    client._protocol = paho.MQTTv311  # paho fixes the protocol at construction; its reconnect reads this
    client._clean_session = True
    return True


def connect_problem(where: str, exc: BaseException | None) -> str:
    """One line saying why a connection attempt to ``where`` failed, TLS named as such."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {where} failed: {exc}"
    return f"cannot connect to {where}: {exc or 'connection failed'}"
