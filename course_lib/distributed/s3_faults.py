"""The S3 API with faults: moto's server on 127.0.0.1 behind the fault-injecting proxy (``loaders.faulty_http``).

Uploads go straight to moto (``direct``); reads go through the proxy (``faulty``), which answers a seeded share
of requests with S3's ``503 SlowDown`` (some with ``Retry-After``) and cuts a share of bodies in the middle.
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from ..loaders.faulty_http import Faults, FaultyServer, serve_faulty
from .s3_shards import S3Server, s3_server


@dataclass(frozen=True)
class FaultyS3:
    """``direct``: moto itself (upload here); ``faulty``: the same bucket through the proxy (read here);
    ``proxy``: the fault-injecting server (``proxy.faults`` counts what it injected)."""

    direct: S3Server
    faulty: S3Server
    proxy: FaultyServer


@contextlib.contextmanager
def s3_faulty_server(bucket: str = "course-faults", faults: Faults = Faults(), *,
                     timeout: float = 10.0) -> Iterator[FaultyS3]:
    """moto's S3 API with ``bucket`` created, and a fault-injecting proxy in front of it; both stopped on exit."""
    with s3_server(bucket, timeout=timeout) as direct, \
            serve_faulty(faults=faults, upstream=direct.endpoint.endpoint_url) as proxy:
        endpoint = dataclasses.replace(direct.endpoint, endpoint_url=proxy.base_url)
        yield FaultyS3(direct, S3Server(endpoint, bucket), proxy)
