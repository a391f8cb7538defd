"""labkit.model.service: the lab's tinyvit/serve-model.py imported in a process that may also hold a
student's own serve-model.py (MLServer names both modules "serve-model")."""

import subprocess
import sys
import textwrap

from tests.helpers.lab import REPO


def test_a_students_serve_model_that_imports_the_lab_s_runtimes_imports(tmp_path):
    # helper session 16: a class on the lab's engine runtime in the student's serve-model.py failed
    # with "partially initialized module 'serve-model' has no attribute 'TinyViTModel'": the lab
    # looked its own service up under the name the student's half-imported file had taken.
    (tmp_path / "serve-model.py").write_text(textwrap.dedent("""\
        from labkit.runtimes.engines import OpenVINOTinyViT


        class TinyViTModel(OpenVINOTinyViT):
            '''The lab's service, on OpenVINO.'''
    """))
    code = textwrap.dedent(f"""\
        import importlib, sys
        sys.path.insert(0, {str(tmp_path)!r})
        student = importlib.import_module("serve-model")
        from labkit.model.service import service_module
        from labkit.runtimes.engines import OpenVINOTinyViT
        lab = service_module()
        assert student.TinyViTModel.__mro__[1] is OpenVINOTinyViT
        assert lab is not student and lab.__file__.endswith("tinyvit/serve-model.py")
        assert issubclass(OpenVINOTinyViT, lab.TinyViTModel)
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_the_lab_s_service_is_imported_once_under_its_own_name():
    from labkit.model.service import MODULE_NAME, service_module

    assert service_module() is service_module() is sys.modules[MODULE_NAME]
