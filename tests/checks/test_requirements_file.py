"""labkit.checks.requirements_file: notebook 06's requirements file; a right answer passes, each
plausible mistake fails with a message that names it (the ``shipped`` folder: tests/checks/conftest.py)."""

import re
import pytest
from labkit import checks

from tests.helpers.solutions import mutate


@pytest.mark.parametrize("old, new, message", [
    ("torch==2.14.1", "torch=2.14.1=py311_cuda", "conda's format"),
    ("torch==2.14.1", "torch>=2.0", "admits torch releases before 2.14 (from 2.0)"),
    ("torch==2.14.1", "torch", "torch has no version"),
    ("torch==2.14.1", "torch<2.15", "admits torch releases before 2.14"),
    ("torch==2.14.1", "torch>=2.13.1,<2.15", "admits torch releases before 2.14 (from 2.13.1)"),
    ("timm==1.0.31", "timm>=0.9.16,<1.1", "admits timm releases before 1.0"),
    ("pillow==13.0.0", "pillow>=12.1,<13.1", "admits pillow releases before 13.0"),
    ("torch==2.14.1", "torch>=2.14,<2.16", "admits torch 2.15.0"),
    ("timm==1.0.31", "timm==0.9.16", "does not admit timm 1.0.31"),
    ("pillow==13.0.0\n", "", "lists no package for the module PIL"),
    ("pillow==13.0.0\n", "pillow==13.0.0; python_version < '3.0'\n", "marker leaves pillow out of the image"),
    ("numpy==2.4.6", "numpy==2.4.6 --hash=sha256:" + "0" * 64, "with one, pip checks a hash for every package"),
    ("uvloop==0.21.0\n", "", "does not list uvloop"),
    ("uvloop==0.21.0", "uvloop>=0.21", "admits uvloop 0.22.0"),
    ("uvloop==0.21.0", "uvloop~=0.21", "admits uvloop 0.22.0"),
    ("uvloop==0.21.0", "uvloop<0.21", "does not admit uvloop 0.21.0"),
    ("numpy==2.4.6", "numpy==", "not a pip requirement"),
    ("numpy==2.4.6", "-r ../requirements.txt", "the build folder does not have"),
])
def test_requirements_mistakes_are_named(shipped, old, new, message):
    path = shipped / "requirements.txt"
    path.write_text(mutate(path.read_text(), old, new))
    with pytest.raises(checks.CheckFailed, match=re.escape(message)):
        checks.requirements(shipped)


CORRECT_BUT_DIFFERENT_REQUIREMENTS = """\
# the service's packages, as tested in the lab
--extra-index-url https://download.pytorch.org/whl/cpu
MLServer==1.7.1            # any spelling of a name
uvloop>=0.21,<0.22  # 0.22 breaks MLServer 1.7.1's workers
torch ~= 2.14.1
timm[hf]==1.0.31 ; python_version >= "3.10"
safetensors==0.8.*
NumPy>=2.4.6,<2.5
Pillow==13.0.0 \\
    ; platform_system != "Nowhere"
safetensors==0.8.0
"""


def test_any_valid_requirements_file_that_admits_only_tested_versions_passes(shipped):
    (shipped / "requirements.txt").write_text(CORRECT_BUT_DIFFERENT_REQUIREMENTS)
    checks.requirements(shipped)


def test_requirements_in_any_encoding_pip_reads_pass_and_others_are_named(shipped):
    # helper session 8: a file Windows Notepad saved as "Unicode" (UTF-16, with its byte order
    # mark) crashed the check with a UnicodeDecodeError; pip reads it.
    text = CORRECT_BUT_DIFFERENT_REQUIREMENTS
    for encoding in ("utf-16", "utf-8-sig", "utf-32"):
        (shipped / "requirements.txt").write_bytes(text.encode(encoding))
        checks.requirements(shipped)
    (shipped / "requirements.txt").write_bytes(("# caf\u00e9\n" + text).encode("latin-1"))
    with pytest.raises(checks.CheckFailed, match="is not text pip can read: byte 5 is not utf-8"):
        checks.requirements(shipped)


def test_the_cpu_build_of_the_tested_torch_passes_and_another_release_does_not(shipped):
    # 06's prose: for a CPU-only image, torch from PyTorch's CPU index, "2.14.1+cpu".
    path = shipped / "requirements.txt"
    text = path.read_text()
    path.write_text("--extra-index-url https://download.pytorch.org/whl/cpu\n"
                    + mutate(text, "torch==2.14.1", "torch==2.14.1+cpu"))
    checks.requirements(shipped)
    path.write_text(mutate(text, "torch==2.14.1", "torch==2.13.0+cpu"))
    with pytest.raises(checks.CheckFailed, match=re.escape("does not admit torch 2.14.1")):
        checks.requirements(shipped)
