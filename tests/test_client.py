"""labkit.client's error answers: what a notebook's cell shows when the server refuses a request."""

from labkit.client import InferenceFailed


def test_a_server_error_points_to_the_servers_log_and_a_refusal_does_not():
    # helper session 10: 03's demo cell showed "HTTP 500: Internal Server Error" and nothing else.
    assert "log_tail()" in str(InferenceFailed(500, "Internal Server Error"))
    refused = InferenceFailed(400, "datatype INT32")
    assert str(refused) == "HTTP 400: datatype INT32" and refused.message == "datatype INT32"
    assert "log_tail" not in str(InferenceFailed(13, "boom", protocol="gRPC", code_name="INTERNAL"))


def test_a_check_names_a_grpc_error_by_its_grpc_code_with_the_log_s_exception(tmp_path):
    # helper session 16: gRPC INTERNAL (13) was said as "HTTP 13", without the server log's
    # exception that a REST 500 gets.
    from labkit.checks.students_server import error_answer

    class Server:
        name = "tuned"
        log = ("Traceback (most recent call last):\n  File \"serve-model.py\", line 9\n"
               "TypeError: Got unsupported ScalarType BFloat16\n")
        model_dir = tmp_path
        model_settings: dict = {}
        options = None

    internal = InferenceFailed(13, "Got unsupported ScalarType BFloat16", protocol="gRPC", code_name="INTERNAL")
    assert internal.inside_the_server and not InferenceFailed(3, "bad", protocol="gRPC").inside_the_server
    failure = error_answer(Server(), internal)
    assert "answered gRPC INTERNAL: Got unsupported" in failure.what and "HTTP 13" not in failure.what
    assert "The server log ends with:" in failure.what
