"""labkit: the helpers the mlserver-lab notebooks import, in folders by who uses them.

* ``checks``: what grades a student's files, functions and running servers (the notebooks'
  check cells), and the ``%%writefile`` hook;
* ``serving``: MLServer started, reloaded and stopped from a notebook (``ModelServer``,
  ``terminal``), its settings read as MLServer reads them, packaging;
* ``measure``: load against a server, its ``/metrics``, the scaling panel, comparisons side by
  side and how busy the machine was, the lab's benchmark record;
* ``model``: the weights, the reference model the checks compare with, the ONNX export;
* ``runtimes``: the MLServer runtimes the lab ships (timm, the engines, Hugging Face);
* ``instructor``: release, hand-out and grading (the hand-out leaves it out);
* top-level modules: the client's requests (``client``), what notebooks show (``show``),
  paths, switches (``config``), the service's contract (``contract``), the checks' images.

Dependencies point down: ``instructor`` and ``checks`` use the others, never the reverse
(tests/test_layout.py keeps it so).
"""
