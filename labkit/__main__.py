"""One command line for the lab: ``python -m labkit <command> [arguments]``.

    weights    prepare, download or write the TinyViT checkpoint (make weights)
    export     export TinyViT to ONNX, verified against PyTorch first (make onnx)
    reference  export the checks' reference model for the checkpoint (make weights runs it)
    notebooks  build the solution notebooks, release the student ones (make notebooks, make release)
    grade      autograde hand-ins with nbgrader (make grade)
    handout    write the student hand-out (make handout)

``python -m labkit <command> --help`` shows a command's own options. The instructor's
commands are not in the hand-out (its labkit has no ``instructor`` folder).
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {"weights": "labkit.model.weights", "export": "labkit.model.export",
            "reference": "labkit.model.reference",
            "notebooks": "labkit.instructor.build", "grade": "labkit.instructor.grading",
            "handout": "labkit.instructor.handout"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    try:
        module = importlib.import_module(COMMANDS[argv[0]])
    except ModuleNotFoundError as error:
        if error.name and error.name.startswith("labkit.instructor"):
            print(f"`{argv[0]}` is an instructor's command: it is not in the student hand-out.", file=sys.stderr)
            return 2
        raise
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
