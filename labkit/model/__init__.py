"""TinyViT in this process: the lab's service imported as MLServer imports it, the reference
answers the checks compare with, the weights, the ONNX export and the Hugging Face folder.
With ``runtimes/``, the only place that imports torch or timm (lazily, where a model runs)."""
