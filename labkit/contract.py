"""The lab service's observable names, in one place: what a client sends and reads, the metric
it logs, the log line each model process writes. ``tinyvit/`` may not import labkit (it runs
under plain ``mlserver start tinyvit``), so it spells them itself; tests/test_layout.py pins
these to what ``tinyvit/`` says."""

INPUT_NAME = "payload"  # the request's image input: uint8 [N, H, W, 3] or encoded files [N]
OUTPUT_NAME = "probabilities"  # the base service's answer: FP32 [N, 21841]
TOP_K_OUTPUTS = ("labels", "scores")  # the top-k services' answer (notebook 03, the timm runtime)
BATCH_SIZE_METRIC = "tinyvit_batch_size"  # images per predict() call, a custom histogram
CONFIDENCE_METRIC = "tinyvit_top1_confidence"  # notebook 07's exercise
MODEL_LOAD_LINE = "torch thread(s) in this process"  # logged once by each process that loads TinyViT
