"""A local S3-compatible server for the tests that read and write ``s3://`` URLs.

``s3_server`` (session): moto's S3 server (``moto.server.ThreadedMotoServer``) on a free
localhost port, with dummy credentials and ``AWS_ENDPOINT_URL_S3`` pointing at it in this
process's environment (so s3fs, through botocore, talks to it and to nothing else), for
the session; stopped, and the environment restored, at its end.  ``s3`` (per test): a
fresh, empty bucket on it, as ``S3Bucket`` (its ``url`` and an s3fs file system to look
at it with).  Tests that use them are skipped, with the reason, when moto's server or
s3fs is not installed.

A test module uses them with ``pytest_plugins = ["s3server"]``.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

BUCKET_PREFIX = "vadfeat-test"
_count = itertools.count()


@dataclass
class S3Bucket:
    """A bucket on the test server: ``name``, ``url`` (``s3://name``), ``fs`` (s3fs,
    listings not cached) and ``endpoint`` (``http://127.0.0.1:PORT``)."""

    name: str
    fs: Any
    endpoint: str

    @property
    def url(self) -> str:
        return f"s3://{self.name}"

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under ``prefix``, sorted."""
        root = f"{self.name}/{prefix}".rstrip("/")
        try:
            found = self.fs.find(root)
        except FileNotFoundError:
            return []
        return sorted(k[len(self.name) + 1:] for k in found)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server started for the session."""
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'vadfeat[cloud]')")
    server_mod = pytest.importorskip("moto.server",
                                     reason="moto's S3 server is not installed (pip install 'moto[server]')")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                                            "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL",
                                            "AWS_PROFILE")}
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(key, None)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL_S3=endpoint)
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def _s3fs(s3_server: str) -> Any:
    import s3fs

    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_server}, use_listings_cache=False,
                             skip_instance_cache=True)


@pytest.fixture
def s3(s3_server: str, _s3fs: Any) -> S3Bucket:
    """A new empty bucket on the session's server."""
    name = f"{BUCKET_PREFIX}-{os.getpid()}-{next(_count)}"
    _s3fs.mkdir(name)
    return S3Bucket(name, _s3fs, s3_server)
