"""The offline API page (``labkit.serving.docs_page``) on a real server: MLServer's own
``/v2/docs`` needs a CDN, this one only loopback; every other request goes to the server as
it is, and its answer comes back as it is (the browser test, tests/test_browser.py, uses the
page itself with the network closed)."""

import re

import pytest
import requests

from labkit.serving import ApiDocs

pytestmark = pytest.mark.slow

BODY = {"inputs": [{"name": "payload", "datatype": "UINT8", "shape": [1, 4, 4, 3], "data": list(range(48))}]}


def addresses(html: str) -> list:
    return re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)


@pytest.fixture(scope="module")
def docs(server):
    docs = ApiDocs(server, model=server.name)
    yield docs
    docs.stop()


def test_mlservers_own_page_needs_a_cdn_and_the_labs_needs_only_its_own_origin(server, docs):
    mlservers = requests.get(server.docs_url, timeout=10).text
    assert any(address.startswith("https://cdn.jsdelivr.net/") for address in addresses(mlservers))
    page = requests.get(docs.url, timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    found = addresses(page.text)
    assert f"/v2/models/{server.name}/docs/dataplane.json" in found
    assert found and all(address.startswith("/") for address in found), found
    for address in found:
        assert requests.get(docs.url.rstrip("/") + address, timeout=10).status_code == 200, address


def test_only_swagger_uis_own_files_are_served(docs):
    script = requests.get(docs.url + "swagger-ui/swagger-ui-bundle.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert len(script.content) > 500_000  # the real bundle, not a stand-in
    assert requests.get(docs.url + "swagger-ui/..%2F..%2F__init__.py", timeout=10).status_code == 404
    assert requests.get(docs.url + "swagger-ui/nothing.js", timeout=10).status_code == 404


def test_requests_reach_the_server_and_its_answers_come_back_unchanged(server, docs):
    before = len(docs.requests)
    direct = requests.post(server.infer_url, json=BODY, timeout=60)
    passed = requests.post(docs.url + f"v2/models/{server.name}/infer", json=BODY, timeout=60)
    assert passed.status_code == direct.status_code == 200
    assert passed.json()["outputs"][0]["data"] == pytest.approx(direct.json()["outputs"][0]["data"], rel=1e-5)
    refused = requests.post(docs.url + f"v2/models/{server.name}/infer", json={"inputs": []}, timeout=60)
    assert refused.status_code == 400 and "payload" in refused.json()["error"]
    assert docs.requests[before:] == [("POST", f"/v2/models/{server.name}/infer", 200),
                                      ("POST", f"/v2/models/{server.name}/infer", 400)]


def test_a_stopped_server_gets_a_502_that_says_so():
    class Gone:
        http_url = "http://127.0.0.1:9"  # the discard port: nothing listens there
        running = False

    docs = ApiDocs(Gone())
    try:
        answer = requests.post(docs.url + "v2/models/x/infer", json=BODY, timeout=30)
        assert answer.status_code == 502 and "start it again" in answer.json()["error"]
    finally:
        docs.stop()
