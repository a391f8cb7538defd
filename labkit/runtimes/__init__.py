"""Only what MLServer imports by ``implementation``: the timm runtime configured in JSON
(``timm.TimmClassifier``) and the ONNX Runtime and OpenVINO runtimes of the exported model
(``engines``). They depend on ``labkit.model`` and nothing above it."""
