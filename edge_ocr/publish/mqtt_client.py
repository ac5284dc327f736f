"""The paho client, built from the ``mqtt`` config section: protocol, credentials, TLS, Last Will.

Only construction lives here; callbacks, threads and what is published belong to
``publish.MqttPublisher``.

MQTT 5 first: its PUBACK carries a reason code, so a broker refusing a message (an ACL, a quota)
says so instead of acknowledging it silently, and its CONNACK says how large a packet it takes.
A broker that only speaks 3.1.1 refuses the MQTT 5 CONNECT; :func:`fall_back_to_311` then switches
the client, and the next attempt speaks 3.1.1.
"""

from __future__ import annotations

import logging
import ssl

from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from ..config import MqttConfig
from .outbox import NewMessage

log = logging.getLogger(__name__)

# CONNACK codes a 3.1.1-only broker answers an MQTT 5 CONNECT with: 1 in 3.1.1's numbering
# ("unacceptable protocol version"), 0x84 in MQTT 5's ("unsupported protocol version").
_PROTOCOL_REFUSED = (1, 0x84)


def make_client(
    cfg: MqttConfig, client_id: str, will: NewMessage, reconnect_min_s: float, reconnect_max_s: float
) -> paho.Client:
    """A paho 2.x client (MQTT 5, clean start) with auth, TLS and the Last Will set.

    Raises:
        OSError: ``mqtt.password_file`` or a TLS file cannot be read.
        ssl.SSLError: a TLS file is not a certificate or key.
    """
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    if cfg.tls.enabled:
        # Our own context rather than tls_set(): it stays reachable, so refresh_credentials can
        # load renewed certificate files into it before a reconnect.
        client.tls_set_context(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
        if cfg.tls.insecure:
            client.tls_insecure_set(True)
    refresh_credentials(client, cfg)
    client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)  # type: ignore[arg-type]
    return client


def refresh_credentials(client: paho.Client, cfg: MqttConfig) -> None:
    """(Re)read the password and the TLS files into ``client``; they apply from its next connect.

    Called before every reconnect, so a password or certificate changed on disk is used without
    a restart.

    Raises:
        OSError: a file cannot be read.
        ssl.SSLError: a TLS file is not a certificate or key.
    """
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.resolved_password())
    ctx = client._ssl_context if cfg.tls.enabled else None  # set by make_client; paho has no getter
    if ctx is None:
        return
    if cfg.tls.ca_file:
        ctx.load_verify_locations(cafile=cfg.tls.ca_file)
    else:
        ctx.load_default_certs()
    if cfg.tls.cert_file:
        ctx.load_cert_chain(cfg.tls.cert_file, cfg.tls.key_file)


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
