"""labkit.client's error answers: what a notebook's cell shows when the server refuses a request."""

from labkit.client import InferenceFailed


def test_a_server_error_points_to_the_servers_log_and_a_refusal_does_not():
    # helper session 10: 03's demo cell showed "HTTP 500: Internal Server Error" and nothing else.
    assert "log_tail()" in str(InferenceFailed(500, "Internal Server Error"))
    refused = InferenceFailed(400, "datatype INT32")
    assert str(refused) == "HTTP 400: datatype INT32" and refused.message == "datatype INT32"
    assert "log_tail" not in str(InferenceFailed(13, "boom", protocol="gRPC", code_name="INTERNAL"))
