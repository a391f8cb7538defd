"""Free ports as MLServer sees them: a port whose last connections wait in TIME_WAIT is free
(uvicorn and gRPC bind with SO_REUSEADDR), a port another process listens on is not."""

import socket

from labkit.serving.processes import port_is_free


def closed_after_a_connection() -> int:
    """A port nobody listens on any more, whose server side closed a connection first (so
    that connection waits in TIME_WAIT, as after a server killed under load)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server closes first: its side goes to TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()
    return port


def test_a_port_in_time_wait_is_free_for_a_new_server():
    port = closed_after_a_connection()
    assert port_is_free(port)
    again = socket.socket()
    again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    again.bind(("127.0.0.1", port))  # what uvicorn does
    again.close()


def test_a_port_with_a_listener_is_taken():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert not port_is_free(listener.getsockname()[1])
