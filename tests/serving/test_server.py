"""labkit.serving.server: run copy, ports, readiness, errors, and no process left behind."""

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests

from labkit import config
from labkit.measure import metrics
from labkit.serving import processes, registry, server as server_module
from labkit.measure import payload_body
from labkit.serving.processes import port_is_free
from labkit.serving.readiness import wait_until_model_ready
from labkit.serving.runcopy import write_run_copy
from labkit.serving import ModelServer, ServerStartError
from labkit.serving.startlog import startup_lines
from tests.helpers.network import answer_encoding, folder_digest, is_loopback, listening_addresses
from tests.helpers.lab import FREE_PORTS, REPO, engine_folder

pytestmark = pytest.mark.slow


def test_overrides_reach_the_server_without_touching_the_students_folder(checkpoint):
    before = folder_digest(REPO / "tinyvit")
    taken = socket.socket()  # a port another program listens on: the server must pick another
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    taken_port = taken.getsockname()[1]
    with taken, ModelServer("tinyvit", weights=checkpoint, parallel_workers=0, max_batch_size=4,
                            max_batch_time=0.01, server_settings={"gzip_enabled": True},
                            http_port=taken_port, grpc_port=0, metrics_port=0) as server:
        assert server.ports["http_port"] != taken_port
        run_copy = json.loads((server.run_folder / "model-settings.json").read_text())
        assert run_copy["max_batch_size"] == 4 and run_copy["max_batch_time"] == 0.01
        run_settings = json.loads((server.run_folder / "settings.json").read_text())
        assert run_settings["host"] == "127.0.0.1" and run_settings["parallel_workers"] == 0
        assert run_settings["gzip_enabled"] is True
        assert answer_encoding(server) == "gzip"
        assert requests.get(f"{server.http_url}/v2/health/ready", timeout=5).status_code == 200
        assert "max_batch_size=4" in repr(server) and "running" in repr(server)
        ports = [server.ports[key] for key in ("http_port", "grpc_port", "metrics_port")]
        assert len(set(ports)) == 3
        assert not any(port_is_free(port) for port in ports[:2])
    assert folder_digest(REPO / "tinyvit") == before
    assert "stopped" in repr(server)
    assert not server.run_dir.exists(), "the run copy must be removed on stop"
    assert "Uvicorn running" in server.log, "the log stays readable after stop"
    assert all(port_is_free(port) for port in ports)


def test_a_failed_load_raises_with_the_log_tail(tmp_path, checkpoint):
    broken = ModelServer("tinyvit", weights=tmp_path / "missing.safetensors", parallel_workers=0, **FREE_PORTS)
    started = time.monotonic()
    with pytest.raises(ServerStartError, match="Last lines of the server log") as caught:
        broken.start(timeout=120, progress=False)
    assert "Cause: RuntimeError: Invalid URI" in str(caught.value)
    assert "run `make weights` once while online" in str(caught.value)
    assert time.monotonic() - started < 60, "a failed load must not wait for the timeout"
    assert not broken.running


STUDENT_SERVICE = textwrap.dedent("""\
    from mlserver import MLModel


    class TinyViTModel(MLModel):
        async def load(self) -> bool:
            scale = 1 / 0
            return True
""")


def test_a_service_that_fails_to_load_shows_the_students_file_and_line_first(tmp_path, checkpoint):
    from labkit.workspace import service_folder

    folder = service_folder(tmp_path / "my-tinyvit", checkpoint=checkpoint)
    (folder / "model-settings.json").write_text('{"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel"}')
    (folder / "serve-model.py").write_text(STUDENT_SERVICE)
    broken = ModelServer(folder, parallel_workers=0, **FREE_PORTS)
    with pytest.raises(ServerStartError) as caught:
        broken.start(timeout=120, progress=False)
    message = str(caught.value)
    assert "In your code: serve-model.py, line 6: scale = 1 / 0\n  ZeroDivisionError: division by zero" in message
    assert message.index("In your code") < message.index("Last lines of the server log")
    assert caught.value._render_traceback_()[0].startswith("\x1b[1;31mServerStartError:")


CHILD = textwrap.dedent("""
    import sys, time
    from labkit.serving.server import ModelServer
    server = ModelServer(sys.argv[1], parallel_workers=1,
                         http_port=0, grpc_port=0, metrics_port=0).start(progress=False)
    print(server.process.pid, server.run_dir, flush=True)
    time.sleep(600)
""")


def group_alive(pgid):
    return processes.group_alive(pgid)


def test_a_killed_parent_leaves_no_server_running_and_no_file_behind(checkpoint, tmp_path):
    # A kernel killed, or a JupyterHub server stopped past its grace: nobody is left to
    # call stop(), so the server's supervisor removes its run copy and pid file itself.
    # (Plumbing: the engine runtime, without torch, with one worker.)
    folder = engine_folder(tmp_path, checkpoint)
    parent = subprocess.Popen([sys.executable, "-c", CHILD, str(folder)], stdout=subprocess.PIPE,
                              cwd=REPO, text=True)
    try:
        server_pid, run_dir = parent.stdout.readline().split()
        server_pid = int(server_pid)
        assert group_alive(server_pid) and os.path.isdir(run_dir)
        assert (processes.pid_dir() / f"{server_pid}.json").exists()
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 30
        while group_alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not group_alive(server_pid), "MLServer outlived its parent"
        assert not os.path.exists(run_dir), "the run copy was left in the temp dir"
        assert not (processes.pid_dir() / f"{server_pid}.json").exists(), "the pid file was left behind"
    finally:
        parent.kill()


def test_stop_orphans_stops_a_server_whose_parent_is_gone(checkpoint, tmp_path):
    # A server started without the parent-death signal (another OS, a detached
    # process): only its pid file can find it.
    run = ModelServer(engine_folder(tmp_path / "folder", checkpoint), parallel_workers=0, **FREE_PORTS)
    run._choose_ports()
    write_run_copy(run.model_dir, tmp_path / "model", run.model_settings, run.options, run.ports)
    orphan = subprocess.Popen([sys.executable, "-m", "mlserver.cli.main", "start", str(tmp_path / "model")],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # cwd: MLServer writes .metrics/ there
    dead_parent = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_parent.wait()
    processes.pid_dir().mkdir(mode=0o700, exist_ok=True)
    (processes.pid_dir() / f"{orphan.pid}.json").write_text(
        json.dumps({"pid": orphan.pid, "parent": dead_parent.pid}))
    try:
        assert orphan.pid in processes.stop_orphans()
        orphan.wait(20)
        assert not group_alive(orphan.pid)
    finally:
        if orphan.poll() is None:
            os.killpg(orphan.pid, signal.SIGKILL)


class Impostor(http.server.BaseHTTPRequestHandler):
    """Another user's server that answers everything with 200 (the same model name)."""

    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_port_taken_while_the_server_starts_is_never_mistaken_for_it(checkpoint, monkeypatch, capsys, tmp_path):
    # On a shared host two students start servers at once: between choosing the default
    # port and MLServer binding it (seconds later), another user's server may take it,
    # answer "ready" for the same model name, and get this student's requests and reloads.
    impostors = []
    choose = ModelServer._choose_ports

    def choose_then_lose_the_port(self):
        choose(self)
        if not impostors:
            impostor = http.server.HTTPServer(("127.0.0.1", self.ports["http_port"]), Impostor)
            threading.Thread(target=impostor.serve_forever, daemon=True).start()
            impostors.append(impostor)

    monkeypatch.setattr(ModelServer, "_choose_ports", choose_then_lose_the_port)
    try:
        with ModelServer(engine_folder(tmp_path, checkpoint), parallel_workers=0, **FREE_PORTS) as server:
            taken = impostors[0].server_address[1]
            assert server.ports["http_port"] != taken
            assert ("127.0.0.1", server.ports["http_port"]) in listening_addresses(server.process.pid)
            answer = requests.post(server.infer_url, data=payload_body("jpeg"), timeout=60)
            assert answer.status_code == 200 and answer.json()["outputs"], answer.text
        assert f"port {taken} was taken" in capsys.readouterr().err
    finally:
        for impostor in impostors:
            impostor.shutdown()
            impostor.server_close()


def test_servers_listen_on_loopback_only_and_two_run_side_by_side(server, server_without_workers):
    # The session's shared servers: one folder, two processes (with and without a worker).
    first, second = server, server_without_workers
    assert set(first.ports.values()).isdisjoint(second.ports.values())
    for running in (first, second):
        addresses = listening_addresses(running.process.pid)
        assert {port for _, port in addresses} >= {running.ports["http_port"], running.ports["grpc_port"]}
        assert all(is_loopback(host) for host, _ in addresses), addresses
        assert requests.get(f"{running.model_url}/ready", timeout=5).status_code == 200


def test_with_a_worker_only_the_worker_loads_torch(server):
    # The shared server: one worker. The main process imports serve-model.py to find the class
    # but must not load torch (tinyvit/serve-model.py imports it where the model runs).
    tree = psutil.Process(server.process.pid).children(recursive=True)
    workers = [process for process in tree if "spawn_main" in " ".join(process.cmdline())]
    main = [process for process in tree if "start" in process.cmdline()]
    assert len(workers) == 1 and len(main) == 1, [process.cmdline() for process in tree]

    def has_torch(process: psutil.Process) -> bool:
        return any("libtorch" in os.path.basename(region.path) for region in process.memory_maps())

    assert has_torch(workers[0]) and not has_torch(main[0])


def test_restart_refuses_what_is_not_a_setting():
    server = ModelServer("tinyvit")
    with pytest.raises(TypeError, match="unknown override 'process'"):
        server.restart(process=None)


OTHER_USER_SCRIPT = """
import os, sys
from labkit.serving import processes
os.setgid(65534)
os.setuid(65534)  # now another user: 'nobody'
processes.write_pid_file(os.getpid())
print(oct(processes.pid_dir().stat().st_mode & 0o777), processes.stop_orphans())
processes.remove_pid_file(os.getpid())
"""


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as a second user")
def test_users_sharing_a_temp_dir_keep_their_pid_files_apart():
    # A shared JupyterHub host with one /tmp: the first user's pid folder must not
    # stop the next user from starting servers, nor expose their pids to each other.
    shared_tmp = tempfile.mkdtemp(prefix="mlserver-lab-shared-tmp-")
    try:
        os.chmod(shared_tmp, 0o1777)
        env = {**os.environ, "TMPDIR": shared_tmp}
        as_root = subprocess.run([sys.executable, "-c",
                                  "from labkit.serving import processes; processes.write_pid_file(1)"],
                                 env=env, cwd=REPO, capture_output=True, text=True)
        assert as_root.returncode == 0, as_root.stderr
        as_nobody = subprocess.run([sys.executable, "-c", OTHER_USER_SCRIPT], env=env, cwd=REPO,
                                   capture_output=True, text=True)
        assert as_nobody.returncode == 0, as_nobody.stderr[-2000:]
        assert as_nobody.stdout.strip() == "0o700 []", "nobody's pid folder is private; root's server is not theirs"
        folders = sorted(name for name in os.listdir(shared_tmp) if name.startswith("mlserver-lab-pids"))
        assert folders == ["mlserver-lab-pids-0"], "nobody's empty pid folder goes with their last pid file"
    finally:
        shutil.rmtree(shared_tmp, ignore_errors=True)


def test_kill_tree_ends_a_process_and_a_descendant_in_its_own_session():
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
        print(child.pid, flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    processes.kill_tree(parent.pid)  # it reaps its own child, the parent, too

    def ended(pid: int) -> bool:
        import psutil
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    parent.wait(10)
    assert ended(parent.pid)
    assert processes.wait_until(lambda: ended(child), 10), "the descendant in its own session survived"


def test_the_pid_folder_goes_with_the_last_pid_file(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    processes.write_pid_file(1)
    processes.write_pid_file(2)
    processes.remove_pid_file(1)
    assert sorted(path.name for path in processes.pid_dir().iterdir()) == ["2.json"]
    processes.remove_pid_file(2)
    assert not processes.pid_dir().exists()


def test_the_lab_service_does_not_compress_its_answers(server):
    # tinyvit/settings.json: gzip_enabled false. Compressing 21,841 floats of JSON per answer
    # costs the server's CPU about half its REST throughput (make bench, rows d-rest).
    assert json.loads((REPO / "tinyvit" / "settings.json").read_text())["gzip_enabled"] is False
    assert answer_encoding(server) == "identity"


def test_an_override_of_zero_is_reported_as_zero(tmp_path):
    folder = tmp_path / "batched"
    shutil.copytree(REPO / "tinyvit", folder, ignore=shutil.ignore_patterns("__pycache__"))
    settings = json.loads((folder / "model-settings.json").read_text())
    (folder / "model-settings.json").write_text(json.dumps({**settings, "max_batch_size": 4, "max_batch_time": 0.1}))
    assert ModelServer(folder).scaling["max_batch_size"] == 4
    turned_off = ModelServer(folder, max_batch_size=0, max_batch_time=0).scaling
    assert turned_off["max_batch_size"] == 0 and turned_off["max_batch_time"] == 0


def test_the_start_progress_bar_ends_complete_so_a_notebook_hides_it(monkeypatch):
    # A tqdm.notebook bar closed below its total turns red and stays under the cell.
    import tqdm.auto

    bars = []

    class RecordingBar(tqdm.auto.tqdm):
        def close(self):
            bars.append((self.n, self.total))
            super().close()

    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    port = processes.free_port()
    # The server's own process answers "ready" (a port someone else answers on does not count).
    answers_ready = textwrap.dedent(f"""
        import http.server
        class Ready(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.end_headers()
        http.server.HTTPServer(("127.0.0.1", {port}), Ready).serve_forever()
    """)
    server = ModelServer("tinyvit", http_port=port)
    server.process = subprocess.Popen([sys.executable, "-c", answers_ready])
    try:
        wait_until_model_ready(server, timeout=20, progress=True)
    finally:
        server.process.kill()
    assert bars and bars[-1][0] == bars[-1][1], bars


def test_graders_side_by_side_never_take_the_default_ports(monkeypatch):
    monkeypatch.setenv(config.FREE_PORTS, "1")
    server = ModelServer("tinyvit")
    server._choose_ports()
    assert not set(server.ports.values()) & set(server_module.DEFAULT_PORTS.values())
    monkeypatch.delenv(config.FREE_PORTS)
    server = ModelServer("tinyvit", http_port=None, grpc_port=0, metrics_port=None)
    server._choose_ports()
    assert server.ports["grpc_port"] != server_module.DEFAULT_PORTS["grpc_port"]


def test_the_orphan_sweep_of_a_grader_leaves_this_process_own_servers_alone(tmp_path):
    # The grader sweeps after each hand-in; a server this process runs (a shared test
    # server, say) is not an orphan. It was stopped before this test existed.
    own = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "mlserver"],
                           start_new_session=True)
    try:
        assert processes.wait_until(lambda: processes.is_mlserver(own.pid), 10)  # exec'd
        processes.write_pid_file(own.pid)
        assert own.pid not in processes.stop_orphans()
        assert own.poll() is None
        # As ModelServer.start() sweeps: a record of this process that is not one of its
        # running servers is stale (the shared test servers are running ones).
        assert processes.stop_orphans(keep=registry.pids()) == [own.pid]
    finally:
        own.kill()
        own.wait()
        processes.remove_pid_file(own.pid)


def test_reload_applies_edits_in_the_running_server_and_restart_rereads_the_folder(tmp_path, checkpoint, cat):
    from labkit.client import infer, pixels_request
    from labkit.workspace import lab_service_copy

    folder = lab_service_copy(tmp_path / "reloaded", checkpoint=checkpoint, with_settings=True)
    model_settings = json.loads((folder / "model-settings.json").read_text())
    with ModelServer(folder, weights=checkpoint, **FREE_PORTS) as server:  # settings.json: 1 worker
        pid = server.process.pid
        # Batching written into the folder: reload() loads it in the same process, and the
        # model really batches (unload + load; a plain MLServer reload ignores new batching).
        (folder / "model-settings.json").write_text(json.dumps({**model_settings, "max_batch_size": 4,
                                                                "max_batch_time": 0.5}))
        assert server.changed_since_start() == ["model-settings.json"]
        server.reload()
        assert server.process.pid == pid and server.changed_since_start() == []
        assert json.loads((server.run_folder / "model-settings.json").read_text())["max_batch_size"] == 4
        before = metrics.scrape(server.metrics_url)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: infer(server.infer_url, pixels_request([cat])), range(4)))
        after = metrics.scrape(server.metrics_url)
        assert metrics.histogram_mean(before, after, "tinyvit_batch_size", server.name) > 1

        # A load that fails says why; the server stays up, and the fixed code loads again.
        code = (folder / "serve-model.py").read_text()
        (folder / "serve-model.py").write_text(code + "\nraise RuntimeError('broken on purpose')\n")
        with pytest.raises(ServerStartError, match="broken on purpose"):
            server.reload()
        (folder / "serve-model.py").write_text(code)
        server.reload()
        assert infer(server.infer_url, pixels_request([cat])).shape == (1, 21841)
        assert server.process.pid == pid

        # What only a new process can change makes reload() restart, and the new process
        # starts from the folder as it is now (restart() used the settings read at creation).
        with pytest.raises(TypeError, match="use restart"):
            server.reload(parallel_workers=2)
        settings = json.loads((folder / "settings.json").read_text())
        (folder / "settings.json").write_text(json.dumps({**settings, "parallel_workers": 2}))
        (folder / "model-settings.json").write_text(json.dumps({**model_settings, "max_batch_size": 2}))
        server.reload()
        assert server.process.pid != pid and server.scaling["parallel_workers"] == 2
        assert json.loads((server.run_folder / "model-settings.json").read_text())["max_batch_size"] == 2


def test_the_start_command_says_which_address_settings_the_lab_changed(tmp_path):
    from labkit.serving.runcopy import settings_changes

    mine, run = tmp_path / "mine.json", tmp_path / "run.json"
    mine.write_text(json.dumps({"host": "127.0.0.1", "http_port": 8080, "debug": False}))
    run.write_text(json.dumps({"host": "127.0.0.1", "http_port": 40123, "grpc_port": 40124, "metrics_port": 8082}))
    assert settings_changes(mine, run) == ["http_port: 8080 -> 40123", "grpc_port: 8081 (MLServer's default) -> 40124"]
    mine.write_text("{not json")
    assert settings_changes(mine, run)[0] == "host: 0.0.0.0 (MLServer's default) -> 127.0.0.1"
    run.write_text(json.dumps({"host": "0.0.0.0", "http_port": 8080, "grpc_port": 8081, "metrics_port": 8082}))
    assert settings_changes(mine, run) == []  # nothing changed, nothing said


def test_the_start_log_shows_each_line_once():
    # MLServer logs "Loaded model" in the worker and again in the main process.
    log = ("2026-11-28 10:45:52,434 [mlserver.rest] INFO - HTTP server running on http://127.0.0.1:8080\n"
           "2026-11-28 10:46:06,644 [mlserver][t] INFO - Loaded model 't' successfully.\n"
           "2026-11-28 10:46:06,646 [mlserver][t] INFO - Loaded model 't' successfully.\n")
    assert startup_lines(log).count("Loaded model") == 1
    assert "HTTP server running" in startup_lines(log)
