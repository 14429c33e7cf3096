"""moto's standalone S3 server over HTTP on 127.0.0.1, for tests of the S3 blob store.

Import the fixture into a test module with `from moto_s3 import moto_endpoint`. Dummy AWS
credentials are set in the environment while it runs, so server subprocesses inherit them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest

MOTO_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "NO_PROXY": "127.0.0.1"}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as mp:
        for name, value in MOTO_ENV.items():
            mp.setenv(name, value)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
        server.stop()


def new_bucket(endpoint: str) -> str:
    bucket = f"safehold-test-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    return bucket
