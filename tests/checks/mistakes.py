"""The mistake catalogue: how students really go wrong, exercise by exercise, as tested data.

Each :class:`Mistake` is an answer a student wrote (a file's content, or a function's source)
and the verdicts the checks must give it: the check that runs when the ``%%writefile`` cell
writes the file (``write``), the graded check of its exercise (``graded``), the words the
graded message must contain (``says``: the mistake, in the student's terms) and must not
(``hides``: the fix). The other checks of the same notebook must pass on it: one mistake
costs its own exercise once. Correct answers written unlike the solution are entries too,
whose verdict is ``PASS``.

``tests/checks/test_mistakes.py`` runs every entry in process (in ``make test-fast``);
``docs/checks.md`` gives the counts per class. Grow it whenever a review or a helper
session playing a student finds a new way to go wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

PASS, FAIL = "pass", "fail"

# The classes of mistakes the catalogue must cover (issue 38), and correct answers written differently.
KINDS = {
    "misspelt key": "a key MLServer does not know, spelt like one it does",
    "wrong level": "the right key at the wrong level of the file",
    "wrong file": "a key that belongs in the other settings file",
    "case or type": "a value of the wrong case or type",
    "unit": "the wrong unit",
    "ignores input": "an answer that ignores its input or gives a fixed one",
    "stale state": "state carried between calls: cached, stale, computed before it is known",
    "first row": "the first row only, or one row for all",
    "position for label": "a position where a label is asked for",
    "mean for quantile": "a mean for a quantile, a total for a delta",
    "wrong path": "the wrong folder or path",
    "wrong value": "a value other than the exercise asks for",
    "format": "a file the tool cannot read",
    "correct, written differently": "a right answer unlike the solution",
}


@dataclass(frozen=True)
class Mistake:
    exercise: str  # a key of test_mistakes.EXERCISES
    kind: str  # a key of KINDS
    answer: str  # the file's content, or the function's source
    graded: str  # PASS or FAIL: the graded check of the exercise
    says: tuple = ()  # words the graded check's message contains
    hides: tuple = ()  # words it must not contain (the fix)
    write: str | None = None  # the %%writefile check's verdict (None: the same as graded)
    note: str = ""
    others: str = PASS  # the notebook's other checks (FAIL only for an untouched answer: no points anywhere)

    @property
    def name(self) -> str:
        return f"{self.exercise}: {self.kind}: {self.note or self.answer[:40]}"


def entry(exercise: str, kind: str, answer: str, graded: str = FAIL, says=(), hides=(), write=None,
          note: str = "", others: str = PASS) -> Mistake:
    return Mistake(exercise, kind, answer, graded, tuple([says] if isinstance(says, str) else says),
                   tuple([hides] if isinstance(hides, str) else hides), write, note, others)


HF = '{"name": "tinyvit-hf", "implementation": "labkit.runtimes.huggingface.HuggingFaceRuntime", '
S01 = "01 settings.json"
M01 = "01 model-settings.json"
M03 = "03 model-settings.json"
H04 = "04 hf model-settings.json"
S05 = "05 settings.json"
M05 = "05 model-settings.json"
R06 = "06 requirements.txt"
P05 = "05 pick_configuration"
N07 = "07 served_rate_and_p95"

CATALOGUE = [
    # ------------------------------------------------------------------ 01 settings.json
    entry(S01, "format", '{"host": "127.000.000.001", "parallel_workers": 0, "debug": false}',
          says="with leading zeros", hides="127.0.0.1",
          note="leading zeros (helper session 15: called reachable from other machines)"),
    entry(S01, "format", '{"host": "127.0.0.1", "parallel_workers": 0, "debug": false, '
          '"logging_settings": {"handlers": {}}}', says=("does not configure Python's logging", "version"),
          write=FAIL, note="a logging set-up without its version (helper session 11: MLServer stopped at its start)"),
    entry(S01, "wrong path", '{"host": "127.0.0.1", "parallel_workers": 0, "debug": false, '
          '"logging_settings": "/etc/hostname"}', says="does not configure Python's logging",
          write=FAIL, note="a file that is no logging set-up (helper session 11)"),
    entry(S01, "wrong path", '{"host": "127.0.0.1", "parallel_workers": 0, "debug": false, '
          '"logging_settings": "/tmp"}', says="is a folder, not a file",
          write=FAIL, note="a folder (helper session 11: named as a file that is not there)"),
    entry(S01, "correct, written differently", '{"host": "127.0.0.1", "parallel_workers": 0, "debug": false, '
          '"logging_settings": {"version": 1, "disable_existing_loggers": false}}', graded=PASS, write=PASS,
          note="a logging set-up of its own that works"),
    entry(S01, "wrong path", '{"host": "127.0.0.1", "parallel_workers": 0, "debug": false, '
          '"logging_settings": "logging.json"}', says=("logging_settings 'logging.json'", "names no file"),
          write=FAIL, note="a logging file that does not exist (helper session 10: MLServer stopped at its start)"),
    entry(S01, "misspelt key", '{"host": "127.0.0.1", "paralel_workers": 0, "debug": false}',
          says=['"paralel_workers"', 'did you mean "parallel_workers"'], write=FAIL),
    entry(S01, "misspelt key", '{"host": "127.0.0.1", "parallel_worker": 0, "debug": false}',
          says=['"parallel_worker"', "ignores it"], write=FAIL),
    entry(S01, "misspelt key", '{"host": "127.0.0.1", "parallelWorkers": 0, "debug": false}',
          says=['"parallelWorkers"', 'did you mean "parallel_workers"'], write=FAIL, note="camelCase"),
    entry(S01, "misspelt key", '{"hostname": "127.0.0.1", "parallel_workers": 0, "debug": false}',
          says=['"hostname"', "ignores it"], write=FAIL),
    entry(S01, "misspelt key", '{"host": "127.0.0.1", "parallel_workers": 0, "debug_mode": false}',
          says=['"debug_mode"', 'did you mean "debug"'], write=FAIL),
    entry(S01, "case or type", '{"Host": "127.0.0.1", "parallel_workers": 0, "debug": false}',
          says=['"Host"', 'did you mean "host"'], write=FAIL),
    entry(S01, "case or type", '{"host": "127.0.0.1", "parallel_workers": "0", "debug": false}',
          says="whole number", write=FAIL, note="workers as text"),
    entry(S01, "correct, written differently", '{"host": "127.0.0.1", "parallel_workers": 0, "debug": "false"}',
          graded=PASS, write=PASS, note="debug as text, which MLServer reads as false"),
    entry(S01, "case or type", '{"host": "127.0.0.1", "parallel_workers": 0, "debug": "no way"}',
          says='"debug" is \'no way\'', write=FAIL, note="debug as words MLServer cannot read"),
    entry(S01, "case or type", '{"host": "127.0.0.1", "parallel_workers": 0, "debug": False}',
          says=["not valid JSON", "lower case"], write=FAIL, note="Python's False"),
    entry(S01, "case or type", '{"host": "127.0.0.1", "parallel_workers": 0.0, "debug": false}',
          says="whole number", write=FAIL),
    entry(S01, "wrong file", '{"host": "127.0.0.1", "parallel_workers": 0, "debug": false, "max_batch_size": 8}',
          says=["max_batch_size", "ignored, silently"], write=FAIL),
    entry(S01, "wrong file", '{"host": "127.0.0.1", "parallel_workers": 0, "debug": false, "name": "my-tinyvit"}',
          says=['"name" is a setting of one model', "model-settings.json"], write=FAIL),
    entry(S01, "wrong file", '{"host": "127.0.0.1", "parallel_workers": 0, "debug": false, '
          '"implementation": "serve-model.TinyViTModel"}', says='"implementation" is a setting of one model',
          write=FAIL),
    entry(S01, "wrong value", '{"host": "0.0.0.0", "parallel_workers": 0, "debug": false}',
          says=["0.0.0.0", "every network interface"], hides="127.0.0.1", write=FAIL),
    entry(S01, "wrong value", '{"host": "192.168.1.20", "parallel_workers": 0, "debug": false}',
          says="192.168.1.20", hides="127.0.0.1", write=FAIL, note="the machine's own network address"),
    entry(S01, "format", '{"host": "localhost:8080", "parallel_workers": 0, "debug": false}',
          says="not an address MLServer can listen on", write=FAIL, note="a port in the host (helper session 1)"),
    entry(S01, "format", '{"host": "127.0.0.1 ", "parallel_workers": 0, "debug": false}',
          says="not an address MLServer can listen on", write=FAIL, note="a trailing space (helper session 1)"),
    entry(S01, "format", '{"host": "::1", "parallel_workers": 0, "debug": false}',
          says="not an address MLServer can listen on", write=FAIL,
          note="IPv6 loopback: MLServer's gRPC cannot bind it (helper session 2; helper session 1 took it for right)"),
    entry(S01, "format", '{"host": "127.1", "parallel_workers": 0, "debug": false}',
          says="not an address MLServer can listen on", write=FAIL, note="a short IPv4 form (helper session 2)"),
    entry(S01, "correct, written differently", '{"host": "LOCALHOST", "parallel_workers": 0, "debug": false}',
          graded=PASS, write=PASS, note="a host name in capitals (helper session 2)"),
    entry(S01, "correct, written differently", '{"host": "127.0.0.2", "parallel_workers": 0, "debug": false}',
          graded=PASS, write=PASS, note="another loopback address"),
    entry(S01, "wrong level", '{"server": {"host": "127.0.0.1", "parallel_workers": 0, "debug": false}}',
          says=['"server" holds', "inside an object of its own"], write=FAIL,
          note="settings nested in an object (helper session 1)"),
    entry(S01, "wrong value", '{"host": "127.0.0.1", "debug": false, "parallel_workers": 0, "debug": true}',
          says="sets 'debug' twice", write=FAIL, note="a duplicate key (helper session 1)"),
    entry(S01, "wrong value", '{"host": "127.0.0.1", "parallel_workers": 0, "debug": false, "http_port": 8081}',
          says=["the REST API and gRPC on one port, 8081", "MLServer's defaults"], write=FAIL,
          note="the REST port on gRPC's default (helper session 6: ticked; the second server fails to start)"),
    entry(S01, "wrong value", '{"host": "127.0.0.1", "parallel_workers": 0, "debug": false, "http_port": 70000}',
          says="from 0 to 65535", write=FAIL, note="a port past 65535 (helper session 7: ticked)"),
    entry(S01, "wrong value", '{"host": "127.0.0.1", "parallel_workers": 0, "debug": false, "http_port": 80}',
          says="below 1024", write=FAIL, note="a system port (helper session 6: ticked)"),
    entry(S01, "wrong value", '{"host": "127.0.0.256", "parallel_workers": 0, "debug": false}',
          says="not an address MLServer can listen on", write=FAIL,
          note="a number past 255 (helper session 8: called a network interface)"),
    entry(S01, "wrong value", '{"host": "127.0.0.1", "parallel_workers": 0, "debug": false, "metrics_endpoint": null}',
          says="serves no metrics", write=FAIL,
          note="metrics turned off (helper session 8: passed, then 05's measurement failed with a ConnectionError)"),
    entry(S01, "wrong value", '{"host": "127.0.0.1", "parallel_workers": 0, "debug": false, "http_port": 0}',
          says="port 0", write=FAIL, note="any free port (helper session 7: ticked; no client knows where it is)"),
    entry(S01, "correct, written differently",
          '{"host": "127.0.0.1", "parallel_workers": 0, "debug": false, "parallel_workers": 0}', graded=PASS,
          write=PASS, note="a key written twice with one value (helper session 6: refused)"),
    entry(S01, "wrong value",
          '{"host": "127.0.0.1", "parallel_workers": 0, "debug": false, "load_models_at_startup": false}',
          says="without loading the model", write=FAIL, note="models not loaded (helper session 1)"),
    entry(S01, "correct, written differently", '{"host": "127.0.0.1", "parallel_workers": 0, "debug": 0}',
          graded=PASS, write=PASS, note="debug 0, which MLServer reads as false"),
    entry(S01, "wrong value", '{"parallel_workers": 0, "debug": false}', says="host '(not set)'", write=FAIL),
    entry(S01, "wrong value", '{"host": "127.0.0.1", "debug": false}', says="MLServer runs its default, 1 worker",
          write=PASS, note="workers left at the default"),
    entry(S01, "wrong value", '{"host": "127.0.0.1", "parallel_workers": 1, "debug": false}',
          says="runs 1 parallel worker", hides='"parallel_workers": 0', write=PASS),
    entry(S01, "wrong value", '{"host": "127.0.0.1", "parallel_workers": -1, "debug": false}',
          says="whole number", write=FAIL),
    entry(S01, "wrong value", '{"host": "127.0.0.1", "parallel_workers": 0}', says="(not set: MLServer 1.7",
          write=PASS, note="debug left at its default"),
    entry(S01, "format", '{"host": "127.0.0.1", "parallel_workers": 0, "debug": false,}',
          says="trailing comma on line 1", write=FAIL),
    entry(S01, "format", "host: 127.0.0.1\nparallel_workers: 0\ndebug: false\n", says="not valid JSON", write=FAIL,
          note="YAML"),
    entry(S01, "format", '["host", "127.0.0.1"]', says="a JSON list, not an object", write=FAIL),
    entry(S01, "format", "", says="is empty", write=FAIL),
    entry(S01, "correct, written differently", '{"debug": false, "parallel_workers": 0, "host": "localhost"}',
          graded=PASS, write=PASS),
    entry(S01, "correct, written differently",
          '{\n  "host": "127.0.0.1",\n  "parallel_workers": 0,\n  "debug": false,\n  "http_port": 8080\n}',
          graded=PASS, write=PASS, note="a port set too"),
    entry(S01, "correct, written differently",
          '{"host": "127.0.0.1", "parallel_workers": 0, "debug": false, "gzip_enabled": false, "metrics_port": 8082}',
          graded=PASS, write=PASS, note="other real settings"),

    # ------------------------------------------------------------------ 01 model-settings.json
    entry(M01, "misspelt key", '{"name": "my-tinyvit", "implementaton": "serve-model.TinyViTModel"}',
          says='"implementation" is', write=FAIL),
    entry(M01, "misspelt key", '{"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel", '
          '"max_batch_sise": 4, "max_batch_time": 0.01}', says=['"max_batch_sise"', 'did you mean "max_batch_size"'],
          write=FAIL),
    entry(M01, "misspelt key", '{"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel", '
          '"parameters": {"uri": "tinyvit.safetensors", "extras": {}}}',
          says=["parameters.extras", "did you mean parameters.extra"], write=FAIL),
    entry(M01, "misspelt key", '{"Name": "my-tinyvit", "implementation": "serve-model.TinyViTModel"}',
          says='no "name"', write=FAIL),
    entry(M01, "wrong level", '{"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel", '
          '"uri": "tinyvit.safetensors"}', says=['"uri"', 'under "parameters"'], write=FAIL),
    entry(M01, "wrong level", '{"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel", '
          '"parameters": {"max_batch_size": 4, "max_batch_time": 0.01}}',
          says=["parameters.max_batch_size", "one level too deep"], write=FAIL),
    entry(M01, "wrong file", '{"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel", '
          '"parallel_workers": 0}', says=["parallel_workers", "settings of the whole server"], write=FAIL),
    entry(M01, "wrong file", '{"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel", '
          '"debug": false}', says=["debug", "settings of the whole server"], write=FAIL),
    entry(M01, "case or type", '{"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel", '
          '"outputs": [{"name": "output-0", "datatype": "fp32", "shape": [-1, 21841]}]}',
          says=["outputs[0].datatype is 'fp32'", "MLServer takes only"], hides="'FP32' or", write=FAIL,
          note="a lowercase datatype"),
    entry(M01, "case or type", '{"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel", '
          '"inputs": [{"name": "payload", "datatype": "UINT8", "shape": "-1, -1, 3"}]}',
          says="inputs[0].shape is '-1, -1, 3'", write=FAIL, note="a shape as text"),
    entry(M01, "misspelt key", '{"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel", '
          '"inputs": [{"name": "payload", "dtype": "UINT8", "shape": [-1, -1, 3]}]}',
          says="inputs[0].datatype is missing", write=FAIL, note="dtype for datatype"),
    entry(M01, "case or type", '{"name": "my-tinyvit", "implementation": "serve-model.tinyvitmodel"}',
          says="defines no class tinyvitmodel", note="the class in lower case"),
    entry(M01, "unit", '{"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel", '
          '"max_batch_size": 8, "max_batch_time": 10}', says=["wait 10 s", "milliseconds"], write=FAIL),
    entry(M01, "wrong path", '{"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel", '
          '"parameters": {"uri": "../../weights/tinyvit.safetensors"}}', says="points outside my-tinyvit/",
          write=FAIL),
    entry(M01, "wrong path", '{"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel", '
          '"parameters": {"uri": "{folder}/tinyvit.safetensors"}}', says="an absolute path", write=FAIL,
          note="the folder's own file by its absolute path: right at home, wrong on grading's copy (helper session 4)"),
    entry(M01, "wrong path", '{"name": "my-tinyvit", "implementation": "my-tinyvit/serve-model.TinyViTModel"}',
          says="not a file path", write=FAIL),
    entry(M01, "wrong path", '{"name": "my-tinyvit", "implementation": "serve-model.py.TinyViTModel"}',
          says="not a file path", write=FAIL),
    entry(M01, "wrong value", '{"name": "tinyvit", "implementation": "serve-model.TinyViTModel"}',
          says="this exercise's model is called 'my-tinyvit'", write=FAIL),
    entry(M01, "wrong value", '{"name": "my-tinyvit", "implementation": "serve_model.TinyViTModel"}',
          says="names serve_model.py", note="an underscore for the hyphen"),
    entry(M01, "wrong value", '{"name": "my-tinyvit", "implementation": "labkit.runtimes.timm.TimmClassifier"}',
          says="a class from an installed package", write=FAIL, note="the lab's runtime (helper session 1)"),
    entry(M01, "wrong value", '{"name": "my-tinyvit", "implementation": "mlserver_timm.TimmClassifier"}',
          says="reads like one of MLServer's runtime packages", write=FAIL,
          note="a runtime package that does not exist (helper session 10: \"checked once mlserver_timm.py exists\")"),
    entry(M01, "wrong value", '{"name": "my-tinyvit", "implementation": "mlserver.MLModel"}',
          says="MLServer's base class", write=FAIL, note="the base class (helper session 1)"),
    entry(M01, "format", '{"name": "my-tinyvit", "implementation": "serve\u2011model.TinyViTModel"}',
          says="non-breaking hyphen", write=FAIL,
          note="a non-breaking hyphen pasted from a document (helper session 11: two names that looked alike)"),
    entry(M01, "format", '{"name": "my-tinyvit", "implementation": "serve-model .TinyViTModel"}',
          says="with space in it", write=FAIL, note="a space inside the name (helper session 11)"),
    entry(M01, "format", '{"name": "my-tinyvit", "implementation": " serve-model.TinyViTModel"}',
          says="with a space at one end", write=FAIL,
          note="a leading space (helper session 10: unseen in the message)"),
    entry(M01, "wrong value", '{"name": "my-tinyvit", "implementation": "serve-model.MLModel"}',
          says=("serve-model.MLModel", "MLServer's base class", "serve-model.py imports"), hides="TinyViTModel",
          write=FAIL, note="the base class the file imports (helper session 10)"),
    entry(M01, "correct, written differently", '{"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel", '
          '"max_batch_size": 0, "max_batch_time": 0}', graded=PASS, write=PASS,
          note="batching off, written out (helper session 1)"),
    entry(M01, "wrong value", '{"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel.predict"}',
          says="not a part of the class", write=FAIL, note="a method named (helper session 2)"),
    entry(M01, "format", '{"name": "my-tinyvit", "implementation": ".serve-model.TinyViTModel"}',
          says="starts with a dot", write=FAIL, note="a leading dot (helper session 2)"),
    entry(M01, "format", '{"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel",}',
          says="trailing comma", write=FAIL),
    entry(M01, "format", "{'name': 'my-tinyvit', 'implementation': 'serve-model.TinyViTModel'}",
          says=["not valid JSON", "double quotes"], write=FAIL, note="single quotes"),
    entry(M01, "correct, written differently",
          '{"implementation": "serve-model.TinyViTModel", "name": "my-tinyvit", "platform": "pytorch"}',
          graded=PASS, write=PASS),
    entry(M01, "correct, written differently",
          '{"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel", '
          '"parameters": {"uri": "./tinyvit.safetensors", "version": "1"}}', graded=PASS, write=PASS),
    entry(M01, "wrong value",
          '{"name": "my-tinyvit", "implementation": "serve-model.TinyViTModel", "max_batch_size": 4, '
          '"max_batch_time": 0.005}', says=["@decode_args", "cannot batch", "HTTP 400"],
          note="batching on, which MLServer refuses for a predict() under @decode_args (helper session 5: ticked "
          "as correct, then every request got HTTP 400 and the declaration check was charged)"),

    # ------------------------------------------------------------------ 03 model-settings.json
    entry(M03, "wrong path", '{"name": "top5", "implementation": "top5.serve-model.TopFiveModel"}',
          says="starts with the folder's name", hides="serve-model.TopFiveModel\"", write=FAIL,
          note="the folder in front of the module (helper session 8: called an installed package's class)"),
    entry(M03, "wrong value", '{"name": "top5", "implementation": "serve-model.TinyViTModel"}',
          says="defines no class TinyViTModel", note="01's class"),
    entry(M03, "wrong value", '{"name": "top5", "implementation": "serve-model.MLModel"}',
          says="MLServer's base class", hides="TopFiveModel", write=FAIL,
          note="the base class the file imports (helper session 10: then every top-5 check blamed serve-model.py)"),
    entry(M03, "wrong value", '{"name": "my-tinyvit", "implementation": "serve-model.TopFiveModel"}',
          says="called 'top5'", write=FAIL, note="01's name"),
    entry(M03, "misspelt key", '{"name": "top5", "implementation": "serve-model.TopFiveModel", '
          '"output": [{"name": "labels", "datatype": "BYTES", "shape": [-1, 5]}]}',
          says=['"output"', 'did you mean "outputs"'], write=FAIL),
    entry(M03, "case or type", '{"name": "top5", "implementation": "serve-model.TopFiveModel", '
          '"outputs": [{"name": "labels", "datatype": "bytes", "shape": [-1, 5]}]}',
          says="outputs[0].datatype is 'bytes'", write=FAIL, note="the issue's lowercase bytes"),
    entry(M03, "case or type", '{"name": "top5", "implementation": "serve-model.TopFiveModel", '
          '"outputs": [{"name": "labels", "datatype": "STRING", "shape": [-1, 5]}]}',
          says="outputs[0].datatype is 'STRING'", write=FAIL),
    entry(M03, "wrong level", '{"name": "top5", "implementation": "serve-model.TopFiveModel", '
          '"parameters": {"outputs": [{"name": "labels", "datatype": "BYTES", "shape": [-1, 5]}]}}',
          says=["parameters.outputs", "one level too deep"], write=FAIL),
    entry(M03, "wrong level", '{"name": "top5", "implementation": "serve-model.TopFiveModel", '
          '"content_type": "np"}', says=['"content_type"', 'under "parameters"'], write=FAIL),
    entry(M03, "correct, written differently", '{"name": "top5", "implementation": "serve-model.TopFiveModel", '
          '"outputs": [{"name": "labels", "datatype": "BYTES", "shape": [-1, 5]}, '
          '{"name": "scores", "datatype": "FP32", "shape": [-1, 5]}]}', graded=PASS, write=PASS),
    entry(M03, "correct, written differently",
          '{"name": "top5", "implementation": "serve-model.TopFiveModel", "parameters": {"content_type": "np"}}',
          graded=PASS, write=PASS),
    entry(M03, "format", '{"name": "top5", "implementation": "serve-model.TopFiveModel"}}', says="not valid JSON",
          write=FAIL, note="a brace too many"),

    # ------------------------------------------------------------------ 04 Hugging Face model-settings.json
    entry(H04, "correct, written differently",
          '{"name": "tinyvit-hf", "implementation": "labkit.runtimes.huggingface.HuggingFaceRuntime ", '
          '"parameters": {"extra": {"task": "image-classification"}}}', graded=PASS,
          note="a space after an installed module's class, which MLServer strips (helper session 17: a point lost)"),
    entry(H04, "case or type", HF + '"parameters": {"extra": {"task": "image-classification "}}}',
          says="with a space at one end", note="a space after the task (helper session 15: told lower case)"),
    entry(H04, "wrong path", HF + '"parameters": {"extra": {"task": "image-classification", '
          '"pretrained_model": "C:\\\\Users\\\\me\\\\tinyvit-hf"}}}', says="an absolute path", hides="hub",
          note="a Windows path (helper session 10: called a model on the hub)"),
    entry(H04, "wrong path", HF + '"parameters": {"extra": {"task": "image-classification", '
          '"pretrained_model": "$HOME/tinyvit-hf"}}}', says="an absolute path", hides="hub",
          note="a shell variable (helper session 11: called a model on the hub)"),
    entry(H04, "wrong path", HF + '"parameters": {"extra": {"task": "image-classification", '
          '"pretrained_model": "file:///home/me/tinyvit-hf"}}}', says="an absolute path", hides="hub",
          note="a file URL (helper session 11: called a model on the hub)"),
    entry(H04, "wrong path", HF + '"parameters": {"extra": {"task": "image-classification", '
          '"pretrained_model": "~/tinyvit-hf"}}}', says="an absolute path", hides="hub",
          note="a path from the home folder (helper session 10: called a model on the hub)"),
    entry(H04, "misspelt key", HF
          + '"parameters": {"extra": {"tasks": "image-classification"}}}',
          says=["parameters.extra.tasks", 'did you mean "task"']),
    entry(H04, "wrong level", HF
          + '"parameters": {"task": "image-classification"}}', says=["parameters.task", "ignores it"]),
    entry(H04, "wrong level", HF
          + '"extra": {"task": "image-classification"}}', says=['"extra"', 'under "parameters"']),
    entry(H04, "case or type", HF
          + '"parameters": {"extra": {"task": "image_classification"}}}', says="task is 'image_classification'",
          hides="image-classification"),
    entry(H04, "correct, written differently", HF
          + '"parameters": {"extra": {"task": "image-classification", "optimum_model": "false"}}}',
          graded=PASS, note="the runtime reads 'false' as false"),
    entry(H04, "correct, written differently", HF
          + '"parameters": {"extra": {"task": "image-classification", "optimum_model": 0}}}',
          graded=PASS, note="0 (helper session 1)"),
    entry(H04, "case or type", HF
          + '"parameters": {"extra": {"task": "image-classification", "optimum_model": "yes"}}}',
          says="optimum_model is 'yes'"),
    entry(H04, "wrong path", HF
          + '"parameters": {"extra": {"task": "image-classification", "pretrained_model": "tinyvit-hf"}}}',
          says="read from where MLServer runs", note="the folder's name (helper session 1)"),
    entry(H04, "wrong path", HF
          + '"parameters": {"extra": {"task": "image-classification", "pretrained_model": "{folder}"}}}',
          says="an absolute path", hides="from where MLServer runs",
          note="the folder by its absolute path (helper session 4: described as a path read from where MLServer runs)"),
    entry(H04, "correct, written differently", HF
          + '"parameters": {"extra": {"task": "image-classification", "pretrained_model": ""}}}', graded=PASS,
          note="an empty pretrained_model: the runtime falls back to the folder (helper session 4: refused)"),
    entry(H04, "misspelt key", HF
          + '"parameters": {"extra": {"task": "image-classification", "optimum_modle": false}}}',
          says=["optimum_modle", 'did you mean "optimum_model"'],
          note="a key the runtime ignores in silence (helper session 4: passed)"),
    entry(H04, "wrong value", '{"name": "tinyvit-hf", "implementation": "mlserver_huggingface.HuggingFaceRuntime", '
          '"parameters": {"extra": {"task": "image-classification"}}}', says="MLServer's own module"),
    entry(H04, "wrong path", HF
          + '"parameters": {"extra": {"task": "image-classification", '
          '"pretrained_model": "timm/tiny_vit_5m_224.dist_in22k"}}}',
          says="a model on the Hugging Face hub"),
    entry(H04, "wrong path", HF
          + '"parameters": {"uri": "./tinyvit-hf", "extra": {"task": "image-classification"}}}',
          says="does not exist (relative to tinyvit-hf/)", hides="tinyvit.safetensors"),
    entry(H04, "wrong value", HF
          + '"parameters": {"extra": {"task": "image-classification", "framework": "tf"}}}', says="framework is 'tf'"),
    entry(H04, "wrong value", HF + '"parameters": {"extra": {"task": "image-classification", "device": "cuda"}}}',
          says="a GPU", note="helper session 2"),
    entry(H04, "correct, written differently",
          HF + '"parameters": {"extra": {"task": "image-classification", "device": "cpu:0"}}}', graded=PASS,
          write=PASS, note="torch's name of the first CPU (helper session 8: called a GPU)"),
    entry(H04, "case or type",
          HF + '"parameters": {"extra": {"task": "image-classification", "inter_op_threads": "two"}}}',
          says=["inter_op_threads", "whole number"], note="a number in words (helper session 8: ticked)"),
    entry(H04, "correct, written differently",
          HF + '"parameters": {"extra": {"task": "image-classification", "intra_op_threads": "2"}}}', graded=PASS,
          write=PASS, note="a number in quotes, which pydantic reads as 2"),
    entry(H04, "case or type", HF + '"parameters": {"extra": {"task": "image-classification", "device": "CPU"}}}',
          says=["'CPU'", "lower case"], hides="a GPU", note="the CPU in capitals (helper session 8: called a GPU)"),
    entry(H04, "correct, written differently",
          '{"implementation": "labkit.runtimes.huggingface.HuggingFaceRuntime", "name": "tinyvit-hf", '
          '"parameters": {"extra": {"framework": "pt", "task": "image-classification"}}}', graded=PASS),

    # ------------------------------------------------------------------ 05 settings.json
    entry(S05, "misspelt key", '{"host": "127.0.0.1", "paralel_workers": 2}',
          says=['"paralel_workers"', 'did you mean "parallel_workers"'], write=FAIL,
          note="the issue's misspelt key, ticked before"),
    entry(S05, "misspelt key", '{"host": "127.0.0.1", "workers": 2}',
          says=['"workers"', 'did you mean "parallel_workers"'], write=FAIL),
    entry(S05, "wrong file",
          '{"host": "127.0.0.1", "parallel_workers": 2, "max_batch_size": 8, "max_batch_time": 0.01}',
          says=["max_batch_size", "ignored, silently"], write=FAIL),
    entry(S05, "case or type", '{"host": "127.0.0.1", "parallel_workers": "2"}', says="whole number", write=FAIL),
    entry(S05, "wrong value", '{"host": "127.0.0.1", "parallel_workers": 8}', says="runs 8 parallel worker(s)",
          hides='"parallel_workers": 2', write=PASS, note="a worker per caller"),
    entry(S05, "wrong value", '{"host": "127.0.0.1"}', says="MLServer runs its default, 1 worker", write=PASS),
    entry(S05, "wrong value", '{"host": "127.0.0.1", "parallel_workers": 0}', says="runs 0 parallel worker(s)",
          write=PASS),
    entry(S05, "correct, written differently", '{"parallel_workers": 2, "host": "localhost", "debug": false}',
          graded=PASS, write=PASS),
    entry(S05, "wrong level", '{"host": "127.0.0.1", "parallel_workers": {"count": 2}}', says="whole number",
          write=FAIL),
    entry(S05, "format", '{"host": "127.0.0.1", "parallel_workers": 2', says="not valid JSON", write=FAIL,
          note="the closing brace left out"),
    entry(S05, "correct, written differently",
          '{"host": "127.0.0.1", "parallel_workers": 2, "model_repository_root": "../tinyvit"}', graded=PASS,
          write=PASS, note="mlserver start <folder> overrides model_repository_root (helper session 1)"),
    entry(S05, "wrong value", '{"host": "127.0.0.1", "parallel_workers": 2, "load_models_at_startup": false}',
          says="without loading the model", write=FAIL, note="helper session 1"),

    # ------------------------------------------------------------------ 05 model-settings.json
    entry(M05, "wrong level", '{"name": "scaled", "implementation": "serve-model.TinyViTModel", '
          '"parameters": {"max_batch_size": 8, "max_batch_time": 0.01}}',
          says=["parameters.max_batch_size", "one level too deep"], write=FAIL,
          note="the issue's batching under parameters, ticked before"),
    entry(M05, "misspelt key", '{"name": "scaled", "implementation": "serve-model.TinyViTModel", '
          '"max_batch_size": 8, "max_batch_timeout": 0.01}',
          says=['"max_batch_timeout"', 'did you mean "max_batch_time"'], write=FAIL),
    entry(M05, "misspelt key", '{"name": "scaled", "implementation": "serve-model.TinyViTModel", '
          '"batch_size": 8, "max_batch_time": 0.01}', says=['"batch_size"', 'did you mean "max_batch_size"'],
          write=FAIL),
    entry(M05, "unit", '{"name": "scaled", "implementation": "serve-model.TinyViTModel", '
          '"max_batch_size": 8, "max_batch_time": 10}', says=["wait 10 s", "milliseconds"], write=FAIL),
    entry(M05, "unit", '{"name": "scaled", "implementation": "serve-model.TinyViTModel", '
          '"max_batch_size": 8, "max_batch_time": 0.00001}', says="the exercise asks for other values",
          write=PASS, note="microseconds"),
    entry(M05, "case or type", '{"name": "scaled", "implementation": "serve-model.TinyViTModel", '
          '"max_batch_size": "8", "max_batch_time": 0.01}', says="whole number", write=FAIL),
    entry(M05, "wrong value", '{"name": "scaled", "implementation": "serve-model.TinyViTModel", '
          '"max_batch_size": 1, "max_batch_time": 0.01}', says="batching stays off", write=PASS),
    entry(M05, "wrong value", '{"name": "scaled", "implementation": "serve-model.TinyViTModel", '
          '"max_batch_size": 8}', says="does not set ['max_batch_time']", write=PASS),
    entry(M05, "wrong value", '{"name": "scaled", "implementation": "serve-model.MLModel", '
          '"max_batch_size": 8, "max_batch_time": 0.01}', says="MLServer's base class", write=FAIL,
          note="the base class the file imports (helper session 10)"),
    entry(M05, "wrong value", '{"name": "scaled", "implementation": "serve-model.TinyViTModel", '
          '"max_batch_size": 4, "max_batch_time": 0.01}', says="the exercise asks for other values", write=PASS),
    entry(M05, "wrong level", '{"name": "scaled", "implementation": "serve-model.TinyViTModel", '
          '"parameters": {"extra": {"max_batch_size": 8, "max_batch_time": 0.01}}}', says="under parameters.extra",
          write=PASS, note="batching handed to the service's own options (helper session 2)"),
    entry(M05, "unit", '{"name": "scaled", "implementation": "serve-model.TinyViTModel", '
          '"max_batch_size": 8, "max_batch_time": Infinity}', says="forever", write=FAIL,
          note="Infinity (helper session 2)"),
    entry(M05, "wrong file", '{"name": "scaled", "implementation": "serve-model.TinyViTModel", '
          '"max_batch_size": 8, "max_batch_time": 0.01, "parallel_workers": 2}',
          says=["parallel_workers", "settings of the whole server"], write=FAIL),
    entry(M05, "correct, written differently", '{"max_batch_time": 0.010, "max_batch_size": 8, '
          '"implementation": "serve-model.TinyViTModel", "name": "scaled"}', graded=PASS, write=PASS),
    entry(M05, "correct, written differently", '{"name": "scaled", "implementation": "serve-model.TinyViTModel", '
          '"max_batch_size": 8, "max_batch_time": 1e-2, "parameters": {"uri": "tinyvit.safetensors"}}',
          graded=PASS, write=PASS),
]

# ---------------------------------------------------------------------- 06 requirements.txt
SOLUTION_REQUIREMENTS = ("mlserver==1.7.1\nuvloop==0.21.0\ntorch==2.14.1\ntimm==1.0.31\nsafetensors==0.8.0\n"
                         "numpy==2.4.6\npillow==13.0.0\n")


def requirements(old: str, new: str) -> str:
    assert old in SOLUTION_REQUIREMENTS, old
    return SOLUTION_REQUIREMENTS.replace(old, new)


CATALOGUE += [
    entry(R06, "format", requirements("torch==2.14.1", "torch=2.14.1=py311_cuda"), says="conda's format"),
    entry(R06, "correct, written differently", "--pre\n--prefer-binary\n" + SOLUTION_REQUIREMENTS, graded=PASS,
          note="pip's flags without a value (helper session 9: refused as options without an address)"),
    entry(R06, "correct, written differently", "--index-url https://download.pytorch.org/whl/cpu\n"
          "--extra-index-url https://pypi.org/simple\n" + SOLUTION_REQUIREMENTS, graded=PASS,
          note="another index, and PyPI added back (helper session 9: refused as replacing PyPI)"),
    entry(R06, "correct, written differently", SOLUTION_REQUIREMENTS + "requests\n", graded=PASS,
          note="a package the service does not import, unpinned"),
    entry(R06, "wrong file", SOLUTION_REQUIREMENTS + "image_batch\nmodel_weights\n",
          says="of the service folder itself", note="the service's own modules listed as packages (helper "
          "session 9: ticked, \"each admitting the tested version only\")"),
    entry(R06, "wrong value", SOLUTION_REQUIREMENTS + "torchvision==0.1.0\n", says="does not admit torchvision",
          note="a package the lab has installed, pinned to another version (helper session 9: ticked)"),
    entry(R06, "wrong value", SOLUTION_REQUIREMENTS + "labkit==0.1.0\n", says="installed here from a folder",
          note="the lab's own package listed (helper session 12: ticked; pip in the image looks it up on PyPI)"),
    entry(R06, "format", "--extra-index-url\n" + SOLUTION_REQUIREMENTS, says="without an address",
          note="an index option with no address (helper session 8: ticked; pip stops)"),
    entry(R06, "wrong value", requirements("uvloop==0.21.0", "uvloop==0.21.0 ; python_version < '3.10'"),
          says="marker leaves uvloop out of the image",
          note="uvloop left out by its marker (helper session 8: named as not listed)"),
    entry(R06, "format", requirements("mlserver==1.7.1", "mlserver==1.7.1 --no-deps"), says="gives --no-deps after a "
          "requirement", note="an install option on a requirement's line (helper session 6: ticked; pip stops)"),
    entry(R06, "format", requirements("torch==2.14.1", "torch 2.14.1"), says="not a pip requirement",
          note="a space for =="),
    entry(R06, "format", requirements("torch==2.14.1", "-r ../requirements.txt"),
          says="the build folder does not have"),
    entry(R06, "wrong value", requirements("torch==2.14.1", "torch"), says="torch has no version", hides="2.14.1"),
    entry(R06, "wrong value", requirements("torch==2.14.1", "torch>=2.0"), says="admits torch releases before 2.14"),
    entry(R06, "wrong value", requirements("torch==2.14.1", "torch==2.13.0"), says="does not admit torch"),
    entry(R06, "wrong value", requirements("uvloop==0.21.0\n", ""), says="does not list uvloop",
          hides=["<0.22", "==0.21"]),
    entry(R06, "wrong value", requirements("uvloop==0.21.0", "uvloop>=0.21"), says="admits uvloop 0.22"),
    entry(R06, "wrong value", requirements("pillow==13.0.0\n", ""), says=["from PIL import", "line"],
          hides=["pillow", "13.0.0"], note="PIL's package left out"),
    entry(R06, "wrong value", requirements("pillow==13.0.0", "PIL==13.0.0"),
          says=["PIL", "the name the code imports"], hides="pillow", note="the import name for the package's"),
    entry(R06, "wrong value", "", says="lists no package", hides=["torch", "timm", "mlserver==", "pillow"],
          note="untouched: the packages are not handed over"),
    entry(R06, "wrong path", requirements("torch==2.14.1", "torch @ file:///tmp/torch.whl"),
          says="installs from a URL"),
    entry(R06, "correct, written differently",
          "# tested with the lab\n--extra-index-url https://download.pytorch.org/whl/cpu\nMLServer ~= 1.7.1\n"
          "uvloop>=0.21,<0.22\ntorch==2.14.1+cpu\ntimm==1.0.*\n"
          "safetensors==0.8.0\nnumpy==2.4.6 ; python_version >= '3.10'\nPillow==13.0.0\n", graded=PASS),
    entry(R06, "format", requirements("torch==2.14.1", "torch==2.14.1 --hash=sha256:" + "0" * 64),
          says="with one, pip checks a hash for every package", note="one --hash (helper session 2)"),
    entry(R06, "format", "--no-binary :all:\n" + SOLUTION_REQUIREMENTS, says="pip would stop on that option",
          note="no wheels: torch has no source package (helper session 2)"),
    entry(R06, "wrong value", requirements("torch==2.14.1", "torch==2.14.1 ; python_version >= '3.11'"),
          says="marker leaves torch out of the image", note="a marker for the lab's Python (helper session 2)"),
    entry(R06, "correct, written differently", "\ufeff" + SOLUTION_REQUIREMENTS, graded=PASS,
          note="a BOM, which pip reads past (helper session 1)"),
    entry(R06, "wrong path", requirements("torch==2.14.1", "torch==2.14.1+cpu --extra-index-url "
                                                           "https://download.pytorch.org/whl/cpu"),
          says="on a requirement's own line, where pip ignores it",
          note="the index on the package's line (helper session 5: \"which this file does not name\")"),
    entry(R06, "wrong path", requirements("torch==2.14.1", "torch==2.14.1 --index-url https://download.pytorch.org/whl/cpu"),
          says="where pip ignores it", note="helper session 5: ticked, pip installs PyPI's build"),
    entry(R06, "wrong path", "--index-url https://download.pytorch.org/whl/cpu\n" + SOLUTION_REQUIREMENTS,
          says="replaces PyPI", hides="--extra-index-url", note="helper session 1"),
    entry(R06, "wrong value", SOLUTION_REQUIREMENTS + "python==3.11\n", says="Python is not a package",
          note="helper session 1"),
    entry(R06, "wrong value", "torch==2.13.0\n" + SOLUTION_REQUIREMENTS, says="lists torch twice",
          note="helper session 1"),
    entry(R06, "correct, written differently", SOLUTION_REQUIREMENTS + "torch>=2.0\n", graded=PASS,
          note="a second, looser line: pip combines both (helper session 1)"),
    entry(R06, "wrong path", requirements("torch==2.14.1", "torch==2.14.1+cu121"), says="PyPI does not have",
          note="a build only PyTorch's index has (helper session 1)"),
    entry(R06, "wrong path", requirements("mlserver==1.7.1", "git+https://github.com/SeldonIO/MLServer@1.7.1"),
          says="installs from a URL", note="helper session 1"),
    entry(R06, "correct, written differently",
          "--extra-index-url https://download.pytorch.org/whl/cpu\n" + SOLUTION_REQUIREMENTS, graded=PASS),
]

# ---------------------------------------------------------------------- 05 pick_configuration
PICK = "def pick_configuration(results, budget_ms):\n"
CATALOGUE += [
    entry(P05, "wrong value",
          PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    if within.empty:\n        return None\n"
          "    close = within[within.throughput_rps >= 0.995 * within.throughput_rps.max()]\n"
          "    return close.p95_ms.idxmin()\n", says="serves more requests per second",
          note="rates within 0.5 % a tie (helper session 11: ticked on 11 draws of 20)"),
    entry(P05, "wrong value",
          PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    return None if within.empty else within.throughput_rps.round().idxmax()\n",
          says="serves more requests per second",
          note="rates rounded to whole requests per second (helper session 9: ticked by chance)"),
    entry(P05, "wrong value",
          PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    if within.empty:\n        return None\n"
          "    close = within[within.throughput_rps >= 0.9 * within.throughput_rps.max()]\n"
          "    return close.p95_ms.idxmin()\n",
          says="calls rates within 10 % of the best a tie",
          note="rates within 10 % a tie, then the lowest p95 (helper session 10: ticked, no drawn row that close)"),
    entry(P05, "correct, written differently",
          PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n", graded=PASS, note="the solution"),
    entry(P05, "correct, written differently",
          PICK + "    ok = results.query('p95_ms <= @budget_ms and errors == 0')\n"
          "    return ok.throughput_rps.idxmax() if len(ok) else None\n", graded=PASS, note="stricter: no errors"),
    entry(P05, "correct, written differently",
          PICK + "    best = None\n    for label, row in results.iterrows():\n"
          "        if row.p95_ms <= budget_ms and (best is None or row.throughput_rps > "
          "results.loc[best].throughput_rps):\n            best = label\n    return best\n",
          graded=PASS, note="a loop"),
    entry(P05, "correct, written differently",
          PICK + "    within = results.loc[results['p95_ms'].le(budget_ms)]\n"
          "    return within.sort_values('throughput_rps', ascending=False).index[0] if len(within) else None\n",
          graded=PASS, note="sorted"),
    entry(P05, "mean for quantile",
          PICK + "    within = results[results.p50_ms <= budget_ms]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n",
          says=["over the", "reads the budget off the p50"], note="the budget on the p50"),
    entry(P05, "case or type",
          PICK + "    within = results[results.p95_ms.astype(int) <= budget_ms]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n",
          says=["over the", "by less than a millisecond"], note="the p95 cut to whole milliseconds (helper session 3)"),
    entry(P05, "case or type",
          PICK + "    within = results[results.p95_ms.round() <= budget_ms]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n",
          says=["over the", "by less than a millisecond"], note="the p95 rounded (helper session 3)"),
    entry(P05, "wrong value",
          PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    return None if within.empty else within.p95_ms.idxmin()\n", says="takes the lowest p95",
          note="the lowest p95"),
    entry(P05, "wrong value", PICK + "    return results.throughput_rps.idxmax()\n", says="over the",
          note="the fastest, budget ignored"),
    entry(P05, "wrong value",
          PICK + "    within = results[results.p95_ms < budget_ms]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n",
          says="is the budget itself", note="strictly below the budget"),
    entry(P05, "position for label",
          PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    return None if within.empty else int(within.throughput_rps.to_numpy().argmax())\n",
          says="a position", note="argmax"),
    entry(P05, "position for label",
          PICK + "    within = results.reset_index(drop=True)\n    within = within[within.p95_ms <= budget_ms]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n", says="a position",
          note="labels dropped"),
    entry(P05, "first row",
          PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    return None if within.empty else within.index[0]\n", says="also meets the budget",
          note="the first row within budget"),
    entry(P05, "ignores input", PICK + "    return 3\n", says=["returned 3", "fixed in the code"],
          note="a label written in"),
    entry(P05, "first row",
          PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    return within.loc[within.throughput_rps.idxmax()]\n", says="returned a Series", note="the row itself"),
    entry(P05, "ignores input",
          PICK + "    within = results[results.p95_ms <= 500]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n", says="budget",
          note="a budget written in"),
    entry(P05, "stale state",
          "CHOSEN = {}\n\n\n" + PICK + "    if 'row' not in CHOSEN:\n"
          "        within = results[results.p95_ms <= budget_ms]\n"
          "        CHOSEN['row'] = None if within.empty else within.throughput_rps.idxmax()\n"
          "    return CHOSEN['row']\n", says="pick_configuration", note="the first answer kept"),
    entry(P05, "stale state",
          "CHOSEN = {}\n\n\n" + PICK + "    if budget_ms not in CHOSEN:\n"
          "        within = results[results.p95_ms <= budget_ms]\n"
          "        CHOSEN[budget_ms] = None if within.empty else within.throughput_rps.idxmax()\n"
          "    return CHOSEN[budget_ms]\n", says="an answer kept from an earlier call",
          note="an answer kept by the budget (helper session 8: named as a position or a fixed value)"),
    entry(P05, "wrong value", PICK + "    raise NotImplementedError()\n", says="not written yet",
          note="untouched: the hidden check gives it nothing either", others=FAIL),
    entry(P05, "first row", PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    return within.throughput_rps.nlargest(1).index.tolist() if len(within) else None\n",
          says="returned a list", note="a list that holds the label, a crash before (helper session 1)"),
    entry(P05, "first row", PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    return within.nlargest(1, 'throughput_rps').index\n",
          says="returned a Index", note="an Index, a crash before (helper session 1)"),
    entry(P05, "first row", PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    best = within.index[within.throughput_rps == within.throughput_rps.max()].values\n"
          "    return best if len(best) else None\n", says="returned a ndarray",
          note="an array, a crash before (helper session 1)"),
    entry(P05, "ignores input", "budget_ms = 650.0\n\n\ndef pick_configuration(results, budget):\n"
          "    within = results[results.p95_ms <= budget_ms]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n",
          says="as if the budget were budget_ms = 650, whatever budget it is given",
          note="the notebook's budget, not the argument (helper session 1, ticked 9 in 30 before)"),
    entry(P05, "wrong value", PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    print(within.throughput_rps.idxmax())\n", says="returns None on every table",
          note="print instead of return (helper session 9: sent to the empty-table case)"),
    entry(P05, "unit", PICK + "    within = results[results.p95_ms <= budget_ms / 1000]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n", says="both in milliseconds",
          note="the budget turned into seconds (helper session 9: sent to the empty-table case)"),
    entry(P05, "ignores input", "BUDGET = 650.0\n\n\ndef pick_configuration(results, budget_ms=BUDGET):\n"
          "    budget_ms = BUDGET\n    within = results[results.p95_ms <= budget_ms]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n",
          says="as if the budget were BUDGET = 650, whatever budget it is given",
          note="its argument overwritten by a constant of another name (helper session 8: named as a wrong row)"),
    entry(P05, "ignores input", "from tests.checks.test_mistakes import sweep_table\n\nat_8 = sweep_table()\n\n\n"
          + PICK + "    within = at_8[at_8.p95_ms <= budget_ms]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n", says="it reads at_8",
          note="the notebook's table, not the argument (helper session 6: named as a position or a fixed value)"),
    entry(P05, "stale state", PICK + "    results.drop(results[results.p95_ms > budget_ms].index, inplace=True)\n"
          "    return None if results.empty else results.throughput_rps.idxmax()\n",
          says="changed the table it was given", note="rows dropped from the caller's table in place (helper "
          "session 6: ticked)"),
    entry(P05, "wrong value", PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    return within.throughput_rps.idxmax()\n", says="no row meets the budget, and pick_configuration raised",
          note="no case for an empty table (helper session 6: a bare ValueError)"),
    entry(P05, "case or type", PICK + "    within = results[results['p95_ms'].astype(str) <= str(budget_ms)]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n", says="pick_configuration",
          note="compared as text (helper session 1, ticked 12 in 30 before)"),
    entry(P05, "wrong value", PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    return None if within.empty else within.p95_ms.idxmax()\n", says="also meets the budget",
          note="the highest p95 within budget (helper session 2, ticked 15 of 15 before)"),
    entry(P05, "unit", PICK + "    within = results[results.p95_ms <= budget_ms * 1.1]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n",
          says=["over the", "lets the p95 exceed the budget by a tolerance"],
          note="a 10 % tolerance on the budget (helper session 2, ticked 15 of 15 before)"),
    entry(P05, "wrong value", PICK + "    within = results[results.p99_ms <= budget_ms]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n",
          says="also meets the budget", hides="p50",
          note="the p99 for the p95 (helper session 3: named as a p50 mistake on tables whose p99 was below the "
               "p95; a margin below the budget chooses the same rows, so neither is named)"),
    entry(P05, "wrong value", PICK + "    within = results[results.p95_ms <= 0.9 * budget_ms]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n", says="the budget",
          hides="p99", note="a 10 % safety margin (helper session 4: named as a p99 mistake)"),
    entry(P05, "wrong value", PICK + "    within = results[results.p95_ms >= budget_ms]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n", says="over the",
          hides="a position", note=">= for <= (helper session 4: named as a position)"),
    entry(P05, "wrong value", PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    return None if within.empty else within.throughput_rps.idxmin()\n",
          says=["also meets the budget", "slowest row"], hides="lowest p95",
          note="the slowest row within budget (helper session 4: named as the lowest p95)"),
    entry(P05, "mean for quantile", PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    return None if within.empty else within.p50_ms.idxmin()\n",
          says=["also meets the budget", "lowest p50"], hides="lowest p95",
          note="the lowest p50 within budget (helper session 4: named as the lowest p95)"),
    entry(P05, "wrong value", PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    return None if within.empty else within.requests.idxmax()\n",
          says=["also meets the budget", "request counts, not the rates"], hides="throughput_rps",
          note="the most requests (helper session 7: passed, every drawn run as long as the others; once "
          "catalogued as right, but a count ranks like the rate only while the runs last alike)"),
    entry(P05, "wrong value", PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    return None if within.empty else (within.throughput_rps / within.p95_ms).idxmax()\n",
          says=["also meets the budget", "throughput per millisecond of p95"],
          note="throughput over p95 (helper session 7: named as the lowest p95 alone)"),
    entry(P05, "wrong value", PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    return None if within.empty else (within.throughput_rps / within.avg_batch).idxmax()\n",
          says="also meets the budget", hides="lowest p95",
          note="throughput per image of a batch (helper session 8: right on every drawn table, charged by the "
          "hidden check only)"),
    entry(P05, "wrong value", PICK + "    within = results[(results.p95_ms <= budget_ms) & (results.avg_batch > 1)]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n",
          says=["also meets the budget", "formed batches"], hides="largest avg_batch",
          note="only rows that batched (helper session 4: named as the largest avg_batch)"),
    entry(P05, "unit", PICK + "    within = results[results.p95_ms / 1000 <= budget_ms]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n",
          says=["over the", "whatever its p95"], note="the p95 in seconds (helper session 3: named as a p50 mistake)"),
    entry(P05, "case or type", PICK + "    within = results[results.p95_ms.round(-1) <= budget_ms]\n"
          "    return None if within.empty else within.throughput_rps.idxmax()\n",
          says=["over the", "by less than a millisecond"],
          note="the p95 rounded to tens (helper session 3: caught 9 of 20)"),
    entry(P05, "wrong value", PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    return None if within.empty else within.avg_batch.idxmax()\n",
          says=["also meets the budget", "largest avg_batch"], note="the largest batches (helper session 3)"),
    entry(P05, "correct, written differently", PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    return None if within.empty else within.images_per_s.idxmax()\n", graded=PASS,
          note="images per second: one image per request in the sweep, the same order as requests per second"),
    entry(P05, "wrong value", PICK + "    within = results[results.p95_ms <= budget_ms]\n"
          "    return within.throughput_rps.idxmax() if len(within) else -1\n",
          says="no row meets the budget", note="-1 for none (helper session 1)"),
]

# ---------------------------------------------------------------------- 07 served_rate_and_p95
READ = ("import math\n\nimport pandas as pd\n\nfrom labkit.measure import metrics\n\n\n"
        "def served_rate_and_p95(before, after, seconds):\n")
INFER_ROWS = ("        rows = rows[(rows['path'] == '/v2/models/{model_name}/infer')"
              " & (rows['status_code'] == '200')]\n")
INFER_BUCKETS = ("    def infer_buckets(samples):\n"
                 "        rows = metrics.labelled(samples, 'rest_server_request_duration_seconds_bucket')\n"
                 + INFER_ROWS +
                 "        return rows.groupby(rows['le'].astype(float))['value'].sum()\n\n"
                 "    buckets = infer_buckets(after).subtract(infer_buckets(before), fill_value=0)\n"
                 "    count = buckets[math.inf]\n")
UPPER_BOUND = ("    for bound, cumulative in buckets.items():\n"
               "        if cumulative >= 0.95 * count:\n"
               "            return RATE, 1000 * (bound if math.isfinite(bound) else 10.0)\n")


def read_with(rate: str, p95_lines: str = UPPER_BOUND, buckets: str = INFER_BUCKETS) -> str:
    return READ + buckets + p95_lines.replace("RATE", rate)


CATALOGUE += [
    entry(N07, "correct, written differently", read_with("count / seconds"), graded=PASS,
          note="the bucket's upper bound"),
    entry(N07, "correct, written differently",
          read_with("count / seconds", "    lower = 0.0\n    for bound, cumulative in buckets.items():\n"
                    "        if cumulative >= 0.95 * count:\n            return RATE, 1000 * lower\n"
                    "        lower = bound\n"), graded=PASS, note="the bucket's lower bound"),
    entry(N07, "correct, written differently",
          READ + "    def served(samples):\n"
          "        rows = metrics.labelled(samples, 'rest_server_requests_total')\n"
          "        rows = rows[(rows['path'] == '/v2/models/{model_name}/infer') & (rows['status_code'] == '200')]\n"
          "        return rows['value'].sum()\n\n"
          "    rate = (served(after) - served(before)) / seconds\n"
          + INFER_BUCKETS + UPPER_BOUND.replace("RATE", "rate"), graded=PASS, note="the rate from the counter"),
    entry(N07, "unit", read_with("count / seconds", UPPER_BOUND.replace("1000 * ", "")),
          says="right latency in seconds", note="seconds for milliseconds"),
    entry(N07, "unit", read_with("count / seconds / 60"), says="the rate is", note="per minute"),
    entry(N07, "unit", read_with("60 * count / seconds"), says="It is per minute",
          note="requests per minute (helper session 14: no reason given)"),
    entry(N07, "case or type", read_with("float(np.float16(count / seconds))", ).replace(
          "import math\n", "import math\n\nimport numpy as np\n", 1), says="through float16",
          note="the rate through float16 (helper session 14: no reason given)"),
    entry(N07, "correct, written differently", read_with("float(f'{count / seconds:.5f}')"), graded=PASS,
          note="the rate kept to 5 decimals (helper session 14: failed on 28 draws of 40)"),
    entry(N07, "mean for quantile", "import numpy as np\n" + read_with(
          "count / seconds", "    per_bucket = buckets.diff().fillna(buckets.iloc[0])\n"
          "    finite = [(bound, int(n)) for bound, n in per_bucket.items() if math.isfinite(bound) and n > 0]\n"
          "    at_bounds = np.repeat([bound for bound, _ in finite], [n for _, n in finite])\n"
          "    return RATE, 1000 * float(np.percentile(at_bounds, 95))\n"),
          says="interpolated between two bounds",
          note="np.percentile over the bounds repeated by their counts (helper session 10: named by the draw)"),
    entry(N07, "correct, written differently", read_with("int(count) / seconds"), graded=PASS,
          note="the count as a whole number (helper session 13: the check's drawn counts had fractions)"),
    entry(N07, "wrong value", read_with("round(count / seconds, 2)"),
          says=("decimal(s)", "the count is right", "lost its digits"),
          note="the rate rounded to 2 decimals (helper session 13, at 4 decimals then: told another number)"),
    entry(N07, "wrong value", read_with("math.floor(100 * count / seconds) / 100"),
          says=("decimal(s)", "the count is right", "lost its digits"),
          note="the rate cut to 2 decimals (helper session 14: no reason given)"),
    entry(N07, "wrong value", read_with("int(count / seconds)"), says="cut to a whole number",
          note="the rate cut to a whole number (helper session 13)"),
    entry(N07, "wrong value", read_with("math.ceil(count / seconds)"), says="rounded up to a whole number",
          note="the rate rounded up (helper session 13)"),
    entry(N07, "case or type", read_with("f'{count / seconds:.2f}'"), says="text, a number formatted for reading",
          note="the rate as text (helper session 13: named as rounded)"),
    entry(N07, "wrong value", read_with("round(count / seconds, 1)"),
          says=("decimal(s)", "the count is right", "lost its digits"),
          note="the rate rounded for display (helper session 12: told it counted another number of requests)"),
    entry(N07, "mean for quantile", read_with("count"), says="It is a count, not a rate", note="a total for a rate"),
    entry(N07, "mean for quantile",
          READ + INFER_BUCKETS +
          "    def total(samples, sample):\n"
          "        rows = metrics.labelled(samples, 'rest_server_request_duration_seconds_' + sample)\n"
          "        rows = rows[(rows['path'] == '/v2/models/{model_name}/infer') & (rows['status_code'] == '200')]\n"
          "        return rows['value'].sum()\n\n"
          "    mean = (total(after, 'sum') - total(before, 'sum')) / (total(after, 'count') - total(before, 'count'))\n"
          "    return count / seconds, 1000 * mean\n", says="that is the mean latency",
          note="the issue's mean from _sum/_count, a crash before"),
    entry(N07, "mean for quantile",
          read_with("count / seconds", buckets=INFER_BUCKETS.replace(
              "infer_buckets(after).subtract(infer_buckets(before), fill_value=0)", "infer_buckets(after)")),
          says="every request since the server started", note="counts since the start"),
    entry(N07, "wrong value",
          read_with("count / seconds", buckets=INFER_BUCKETS.replace(
              " & (rows['status_code'] == '200')", "")), says="the rate is", note="refused requests counted"),
    entry(N07, "wrong value",
          read_with("count / seconds", buckets=INFER_BUCKETS.replace(INFER_ROWS, "")),
          says="health probes or refused requests", note="every path counted"),
    entry(N07, "case or type",
          read_with("count / seconds", buckets=INFER_BUCKETS.replace("== '200'", "== 200")),
          says="label values are text", note="200 as a number"),
    entry(N07, "wrong value", read_with("count / seconds", UPPER_BOUND.replace("0.95", "0.5")),
          says="the 50th percentile", hides="0.95", note="the median"),
    entry(N07, "wrong value", read_with("count / seconds", UPPER_BOUND.replace("0.95", "0.9")),
          says="the 90th percentile", hides="0.95",
          note="the p90 (helper session 5: named as the +Inf bucket left out)"),
    entry(N07, "wrong value", read_with("count / seconds", UPPER_BOUND.replace("0.95", "0.99")),
          says="the 99th percentile", hides="0.95", note="the p99 (helper session 5: named as > for >=)"),
    entry(N07, "ignores input", READ + "    return 12.5, 250.0\n", says="the rate is", note="fixed numbers"),
    entry(N07, "wrong value", READ + "    raise NotImplementedError\n", says="not written yet", note="untouched"),
    entry(N07, "case or type",
          READ + "    def buckets(samples):\n"
          "        rows = metrics.labelled(samples, 'rest_server_request_duration_seconds_bucket')\n"
          + INFER_ROWS + "        return rows.groupby('le')['value'].sum()\n\n"
          "    b = buckets(after) - buckets(before)\n    count = b['+Inf']\n"
          "    for le, cumulative in b.drop('+Inf').items():\n"
          "        if cumulative >= 0.95 * count:\n            return count / seconds, 1000 * float(le)\n"
          "    return count / seconds, 10000.0\n", says="the order of their text",
          note="the bounds in text order (helper session 1, ticked 27 in 40 before)"),
    entry(N07, "mean for quantile", read_with("count / seconds", "    finite = buckets[buckets.index < math.inf]\n"
          "    for bound, cumulative in finite.items():\n"
          "        if cumulative >= 0.95 * finite.iloc[-1]:\n            return RATE, 1000 * bound\n"),
          says="95% of the requests that took under 10 s",
          note="95% of the requests under 10 s only (helper session 1, always ticked before)"),
    entry(N07, "wrong value", read_with("count / seconds", UPPER_BOUND.replace(
          "return RATE, 1000 * (bound if math.isfinite(bound) else 10.0)",
          "return 1000 * (bound if math.isfinite(bound) else 10.0), RATE")),
          says="in the other order", note="swapped (helper session 1)"),
    entry(N07, "wrong value", read_with("count / seconds", buckets=INFER_BUCKETS.replace(
          "(rows['status_code'] == '200')", "(rows['status_code'] != '400')")),
          says="the rate is", note="not 400 for successful (helper session 2, ticked before)"),
    entry(N07, "wrong value", read_with("count / seconds", buckets=INFER_BUCKETS.replace(
          "(rows['path'] == '/v2/models/{model_name}/infer')", "(rows['path'] != '/v2/models/{model_name}/ready')")),
          says="the rate is", note="not the probe for inference (helper session 2, ticked before)"),
    entry(N07, "stale state", READ + "    delta = after.value.to_numpy() - before.value.to_numpy()\n"
          "    table = after.assign(value=delta)\n"
          "    rows = metrics.labelled(table, 'rest_server_request_duration_seconds_bucket')\n"
          + INFER_ROWS[4:] + "    buckets = rows.groupby(rows['le'].astype(float))['value'].sum()\n"
          "    count = buckets[math.inf]\n" + UPPER_BOUND.replace("RATE", "count / seconds"),
          says="the rate is", note="the scrapes subtracted row by row by position (helper session 2, ticked before)"),
    entry(N07, "wrong value", READ.replace("(before, after, seconds)", "(after, before, seconds)") + INFER_BUCKETS
          + UPPER_BOUND.replace("RATE", "count / seconds"), says="taken the other way round",
          note="before and after swapped (helper session 2)"),
    entry(N07, "wrong value", read_with("count / seconds", buckets=INFER_BUCKETS.replace(
          "(rows['path'] == '/v2/models/{model_name}/infer')", "(rows['model'] == 'tinyvit')")),
          says="no model", note="filtered on the model (helper session 1)"),
    entry(N07, "wrong value", read_with("count / seconds", UPPER_BOUND.replace(">= 0.95 * count", "> 0.95 * count")),
          says="one bound holds exactly 95%", hides=">=",
          note="> for >= (helper session 4, ticked 8 in 8 before: no drawn bound held exactly 95%)"),
    entry(N07, "wrong value", read_with("count / seconds",
          "    bounds = list(buckets.index)\n    for index, (bound, cumulative) in enumerate(buckets.items()):\n"
          "        if cumulative >= 0.95 * count:\n            after_it = bounds[min(index + 1, len(bounds) - 1)]\n"
          "            return RATE, 1000 * (after_it if math.isfinite(after_it) else 10.0)\n"),
          says="one bucket too far", hides="Keep the rows",
          note="the bound after the right one (helper session 8: named as refused requests kept)"),
    entry(N07, "wrong value", read_with("count / seconds", UPPER_BOUND.replace(
          ">= 0.95 * count", ">= int(0.95 * count)")), says="rounded down to a whole request", hides="int(",
          note="the rank floored to a whole request (helper session 8: ticked 12 of 12)"),
    entry(N07, "stale state", READ + "    before.drop(before[before['sample'] != "
          "'rest_server_request_duration_seconds_bucket'].index, inplace=True)\n" + INFER_BUCKETS
          + UPPER_BOUND.replace("RATE", "count / seconds"), says="changed the scrape it was given as before",
          hides="inplace", note="rows dropped from the caller's scrape in place (helper session 8: ticked)"),
    entry(N07, "wrong file", READ + INFER_BUCKETS + "    calls = metrics.labelled(after, 'grpc_server_handled_total')"
          "['value'].sum() - metrics.labelled(before, 'grpc_server_handled_total')['value'].sum()\n"
          + UPPER_BOUND.replace("RATE", "calls / seconds"), says="gRPC metrics count gRPC calls",
          note="the rate from gRPC's counter (helper session 8: blamed on '200' alone)"),
    entry(N07, "case or type", read_with("count / seconds", buckets=INFER_BUCKETS.replace(
          "rows['le'].astype(float)", "rows.le.astype(float)")), says="a pandas method where a column was meant",
          note="rows.le, the pandas method (helper session 8: Python's AttributeError alone)"),
    entry(N07, "unit", read_with("count / seconds", UPPER_BOUND.replace("1000 * ", "1e6 * ")),
          says="right latency in microseconds", note="microseconds (helper session 4, named another bucket)"),
    entry(N07, "unit", read_with("count / seconds", UPPER_BOUND.replace("1000 * ", "100 * ")),
          says="hundredths of a second", note="seconds times 100 (helper session 6, named another bucket)"),
    entry(N07, "correct, written differently",
          read_with("count / seconds", "    index = int(np.searchsorted(buckets.to_numpy(), 0.95 * count))\n"
                    "    bound = buckets.index[index]\n"
                    "    return RATE, 1000 * (bound if math.isfinite(bound) else 10.0)\n").replace(
              "import math\n", "import math\n\nimport numpy as np\n"),
          graded=PASS, note="np.searchsorted, left side"),
    entry(N07, "correct, written differently",
          read_with("count / seconds", UPPER_BOUND.replace("cumulative >= 0.95 * count", "cumulative / count >= 0.95")),
          graded=PASS, note="the share of the count compared with 0.95"),
    entry(N07, "wrong value", "class _Load:\n    summary = {'seconds': 17.3}\n\n\nload = _Load()\n"
          + read_with("count / load.summary['seconds']"), says=("reads load from the notebook", "the seconds"),
          note="the notebook's load seconds for the argument (helper session 15: told another count)"),
]


# ---------------------------------------------------------------------- 03 the top-5 service (live)
# Not in CATALOGUE (which runs in process in make test-fast): each entry is a change of the
# solution's predict() served by a real MLServer, graded by 03's three service checks in order
# (tests/checks/test_live.py, one shared server reloaded per entry). ``charged``: the one check
# whose points the mistake costs (None: a right answer); ``says``: words of that check's message.
@dataclass(frozen=True)
class ServiceMistake:
    kind: str
    old: str  # a line of the solution's predict()
    new: str  # what the student wrote instead
    charged: str | None  # "top5_service", "top5_batch", "top5_under_batching" or None
    says: tuple = ()
    note: str = ""


TOP_LINE = '        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :5]\n'
SCORES_LINE = "        scores = np.take_along_axis(probabilities, top, axis=1)\n"
LABELS_OF_TOP = "        labels = np.vectorize(LABELS.index_to_description, otypes=[object])(top)\n"
SCORES_OUT = 'NumpyCodec.encode_output("scores", scores.astype(np.float32))'
IMAGES_LINE = "        images = decode_images(payload)\n"
SERVICE_03 = [
    ServiceMistake("wrong value", "images = decode_images(payload)",
                   "images = list(NumpyCodec.decode_input(payload.inputs[0]))", "top5_batch",
                   ("PIL was given text or bytes",), note="the request decoded by NumpyCodec, JPEG bytes kept as "
                   "text (helper session 8: PIL's words about a NumPy type alone)"),
    ServiceMistake("correct, written differently", LABELS_OF_TOP,
                   "        labels = np.vectorize(lambda i: LABELS.index_to_description(i).encode(), "
                   "otypes=[object])(top)\n", None, note="labels as bytes (helper session 3)"),
    ServiceMistake("correct, written differently", SCORES_OUT, 'NumpyCodec.encode_output("scores", scores)', None,
                   note="scores as float64 (helper session 3)"),
    ServiceMistake("correct, written differently", 'NumpyCodec.encode_output("labels", labels),',
                   'NumpyCodec.encode_output("labels", labels), NumpyCodec.encode_output("indices", top),', None,
                   note="a third output (helper session 3: ✘ when written before)"),
    ServiceMistake("unit", SCORES_OUT, 'NumpyCodec.encode_output("scores", (100 * scores).astype(np.float32))',
                   "top5_service", ("probabilities in percent",), note="percent (helper session 7: percent not named)"),
    ServiceMistake("wrong value", "softmax(dim=-1)", "softmax(dim=0)", "top5_service",
                   ("add up to 5",), note="a softmax over the batch axis (helper session 3: misnamed)"),
    ServiceMistake("wrong value", "softmax(dim=-1)", "log_softmax(dim=-1)", "top5_service", ("log-probabilities",),
                   note="log-probabilities (helper session 4: named as scores that are not the model's)"),
    ServiceMistake("wrong value", TOP_LINE, '        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :4]\n',
                   "top5_service", ("expected (1, 5)",), note="four columns"),
    ServiceMistake("case or type", 'NumpyCodec.encode_output("labels", labels)',
                   'NumpyCodec.encode_output("label", labels)', "top5_service", ("no output named ['labels']",),
                   note="an output renamed (helper session 3: charged three times)"),
    ServiceMistake("wrong value", TOP_LINE, '        top = np.argsort(-probabilities, axis=1, kind="stable")[:, 1:6]\n',
                   "top5_service", ("most probable class is missing",),
                   note="the best class skipped (helper session 6: sent to look at the preprocessing)"),
    ServiceMistake("case or type", 'NumpyCodec.encode_output("labels", labels),',
                   'NumpyCodec.encode_output("label", labels), NumpyCodec.encode_output("indices", top),',
                   "top5_service", ("no output named ['labels']",),
                   note="an output renamed, and class indices beside it (helper session 4: charged three times)"),
    ServiceMistake("wrong value", "Image.fromarray(image)", "Image.fromarray(image[:, :, ::-1].copy())",
                   "top5_service", ("nor any other image's",), note="BGR for RGB (helper session 4: preprocessing "
                   "mistakes were told to keep the rows in order)"),
    ServiceMistake("first row", LABELS_OF_TOP, LABELS_OF_TOP + "        labels = np.roll(labels, 1, axis=0)\n",
                   "top5_batch", ("they are image",), note="labels of another image's row"),
    ServiceMistake("first row", IMAGES_LINE, "        images = decode_images(payload)[::-1]\n", "top5_batch",
                   ("they are image",), note="the rows reversed"),
    ServiceMistake("stale state", SCORES_LINE, SCORES_LINE + "        scores = np.sort(scores, axis=0)[::-1]\n",
                   "top5_batch", ("labels are right but the scores are not",),
                   note="scores sorted across the rows (helper session 3: charged 0, 1 or 2 times)"),
    ServiceMistake("first row", SCORES_LINE, "        scores = probabilities[np.arange(len(images)), top]\n",
                   "top5_batch", ("HTTP 500",), note="an error on every batch (helper session 3: charged twice)"),
    ServiceMistake("stale state", "            probabilities = self.model(batch).softmax(dim=-1).numpy()\n",
                   "            key = (len(images), *images[0].shape)\n"
                   "            self.kept = getattr(self, 'kept', {})\n"
                   "            if key not in self.kept:\n"
                   "                self.kept[key] = self.model(batch).softmax(dim=-1).numpy()\n"
                   "            probabilities = self.kept[key]\n", "top5_service",
                   ("an answer kept from an earlier request",),
                   note="an answer kept by the request's shape (helper session 8: 5 of 8 points, then blamed on the "
                   "preprocessing by the hidden check)"),
    ServiceMistake("wrong value", SCORES_OUT, 'NumpyCodec.encode_output("scores", np.round(scores, 4))',
                   "top5_service", ("rounded to 4 decimal(s)",),
                   note="scores rounded to 4 decimals (helper session 13: told to look at the rows)"),
    ServiceMistake("stale state", "            probabilities = self.model(batch).softmax(dim=-1).numpy()\n",
                   "            self.rows = getattr(self, 'rows', [])\n"
                   "            self.rows += list(self.model(batch).softmax(dim=-1).numpy())\n"
                   "            probabilities = np.stack(self.rows)\n", "top5_service",
                   ("rows that are not this request's images'",),
                   note="rows of earlier requests kept in self.rows (helper session 12: told to keep the batch axis)"),
    ServiceMistake("first row", TOP_LINE, "        probabilities.sort(axis=1)\n" + TOP_LINE, "top5_service",
                   ("those of the last 5 classes",),
                   note="sorted in place before the ranking (helper session 8: told to read the request's images)"),
    ServiceMistake("first row", IMAGES_LINE, "        images = decode_images(payload)[:3]\n", "top5_under_batching",
                   ("does not fit its own shape", "expected (1, 5)", "expected (2, 5)"),
                   note="at most 3 images per call: only merged batches are bigger"),
]
