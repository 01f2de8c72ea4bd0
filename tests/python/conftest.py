"""Fixtures for the Python client's tests: the real retrace-server with the oracle models.

The server is $RETRACE_SERVER_BINARY (CTest passes the build's), its models and images come from
$RETRACE_FIXTURES (the CTest fixture make_test_fixtures writes <build>/test_fixtures); the
package is found on $PYTHONPATH (CTest puts <build>/python there). One server runs per test
session, on 127.0.0.1 with an ephemeral port (--port_file) and a temporary data folder.
"""

import os
import signal
import subprocess
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.environ.get("RETRACE_SERVER_BINARY", os.path.join(REPO, "build", "retrace-server"))
FIXTURES = os.environ.get("RETRACE_FIXTURES", os.path.join(REPO, "build", "test_fixtures"))
CLASSES = ["bird", "car", "cat", "dog", "guitar", "horse", "house", "tree"]


def fixture_image(domain, cls, n=0):
    return os.path.join(FIXTURES, "images", domain, cls, "%s_%d.png" % (cls, n))


def start_server(work, extra_args=()):
    """Starts retrace-server in the folder `work` (a pathlib.Path) and waits until it is SERVING;
    returns (address, process). Skips the test when the server or the models are missing."""
    models = os.path.join(FIXTURES, "oracle")
    if not os.path.exists(os.path.join(models, "image_encoder", "model.pt")):
        pytest.skip("oracle models not found in %s (the CTest fixture make_test_fixtures makes "
                    "them; it needs ../shared/data)" % FIXTURES)
    if not os.access(SERVER, os.X_OK):
        pytest.skip("retrace-server not built at %s (set RETRACE_SERVER_BINARY)" % SERVER)
    import retrace

    port_file = work / "port"
    log_path = work / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [SERVER, "--listen", "127.0.0.1:0", "--models", models, "--data-dir",
             str(work / "data"), "--port_file", str(port_file), "--workers", "2",
             "--http-listen", "off", *extra_args],
            stdout=log, stderr=subprocess.STDOUT)

    def fail(why):
        process.kill()
        process.wait()
        tail = log_path.read_text(errors="replace")[-3000:]
        pytest.fail("retrace-server %s; its log ends:\n%s" % (why, tail))

    deadline = time.monotonic() + 60
    address, status = None, None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            fail("exited with status %d" % process.returncode)
        if address is None and port_file.exists() and port_file.read_text().strip():
            address = "127.0.0.1:" + port_file.read_text().strip()
        if address is not None:
            with retrace.Client(address, timeout=2) as client:
                try:
                    status = client.health()
                except retrace.RetraceError as e:
                    status = e.code.name
            if status == "SERVING":
                break
        time.sleep(0.2)
    else:
        fail("was not SERVING within 60 s (last: %s)" % status)
    return address, process


def stop_server(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """The address ("127.0.0.1:PORT") of a running, SERVING retrace-server."""
    address, process = start_server(tmp_path_factory.mktemp("server"))
    yield address
    stop_server(process)


@pytest.fixture(scope="session")
def client(server):
    import retrace
    with retrace.Client(server, timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def gallery(client):
    """A collection "gallery" holding one photo per class ("photo-<class>"): the even classes
    with captions given ("a picture of a <class>"), the odd ones captioned by the server.
    Returns the index stream's highest position."""
    import retrace
    client.create_collection("gallery")
    items = [retrace.Item(id="photo-" + c, image=fixture_image("photo", c),
                          caption="a picture of a %s" % c if i % 2 == 0 else "",
                          attributes={"class": c})
             for i, c in enumerate(CLASSES)]
    stream = client.index("gallery", items, batch=3)
    results = list(stream)
    assert [r.id for r in results] == [i.id for i in items]
    assert all(r.ok for r in results), [(r.id, r.message) for r in results if not r.ok]
    assert stream.position > 0
    return stream.position
