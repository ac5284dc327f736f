"""The paho client, built from the ``mqtt`` config section: protocol, credentials, TLS, Last Will.

Only construction lives here; callbacks, threads and what is published belong to
``publish.MqttPublisher``.
"""

from __future__ import annotations

import ssl

from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion

from ..config import MqttConfig
from .outbox import NewMessage


def make_client(
    cfg: MqttConfig, client_id: str, will: NewMessage, reconnect_min_s: float, reconnect_max_s: float
) -> paho.Client:
    """A paho 2.x client (MQTT 3.1.1, clean session) with auth, TLS and the Last Will set.

    Raises:
        OSError: ``mqtt.password_file`` or a TLS file cannot be read.
    """
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311, clean_session=True)
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.resolved_password())
    if cfg.tls.enabled:
        client.tls_set(
            ca_certs=cfg.tls.ca_file,
            certfile=cfg.tls.cert_file,
            keyfile=cfg.tls.key_file,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        if cfg.tls.insecure:
            client.tls_insecure_set(True)
    client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)  # type: ignore[arg-type]
    return client


def connect_problem(where: str, exc: BaseException | None) -> str:
    """One line saying why a connection attempt to ``where`` failed, TLS named as such."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {where} failed: {exc}"
    return f"cannot connect to {where}: {exc or 'connection failed'}"
