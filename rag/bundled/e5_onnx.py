"""The ``onnx-int8`` backend's folder: an ONNX export of the bundled e5 folder, int8-quantized."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

from rag.bundled.e5 import E5_NAME, build_e5, e5_folder
from rag.bundled.files import MANIFEST, _install_folder
from rag.errors import ModelError

# Bump when the ONNX export or its quantization changes: the ONNX folder's key includes it.
ONNX_FORMAT = 1
ONNX_INT8 = "model_int8.onnx"
ONNX_OPSET = 17
# What the ONNX folder copies from the sentence-transformers folder (all but the weights).
_ONNX_SIDE_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
)


def e5_onnx_folder(models_dir: Path) -> Path:
    return models_dir / f"{e5_folder(models_dir).name}-onnx{ONNX_FORMAT}"


def _export_onnx(src: Path, dest: Path) -> None:
    """fp32 ONNX of the transformer (token embeddings out; pooling is done by the caller)."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    model = AutoModel.from_pretrained(src, local_files_only=True, attn_implementation="eager")

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask)
            return out.last_hidden_state  # type: ignore[no-any-return]

    # two rows, one padded: the traced graph must not bake in a shape or a mask
    ids = torch.tensor([[0, 6, 7, 8, 2], [0, 6, 7, 2, 1]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    dynamic = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(
            TokenEmbeddings().eval(),
            (ids, mask),
            str(dest),
            input_names=["input_ids", "attention_mask"],
            output_names=["token_embeddings"],
            dynamic_axes={
                "input_ids": dynamic,
                "attention_mask": dynamic,
                "token_embeddings": dynamic,
            },
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def _ffn_output_matmuls(model: Path, src: Path) -> list[str]:
    """Names of the exported graph's feed-forward output MatMuls, one per layer."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    names = [
        n.name
        for n in graph.node
        if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name
    ]
    layers = int(json.loads((src / "config.json").read_text())["num_hidden_layers"])
    if len(names) != layers:  # the exporter named its nodes otherwise: do not guess
        raise ModelError(f"ONNX export: found {len(names)} feed-forward outputs, not {layers}")
    return names


def build_e5_onnx(models_dir: Path, force: bool = False) -> Path:
    """Build (once) the ONNX int8 folder of the bundled e5 model, next to its own folder.

    From the sentence-transformers folder (built first if need be): ``torch.onnx.export`` of the
    transformer in fp32, then dynamic int8 quantization of its weights (per channel; activations
    are quantized at run time, per tensor) with onnxruntime. The feed-forward output projections
    stay fp32: their input (the GELU output) has a range too wide for 8 bits, and in int8 they
    carried most of the error for a small part of the speed-up (the attention products are fp32
    anyway; the figures are in docs/results.md). The folder keeps the int8 model, the
    tokenizer and the sentence-transformers configs (pooling, prompts, max length); the fp32
    export is an intermediate and is not kept. Built in a temporary folder, with a manifest, then
    renamed.
    """
    dest = e5_onnx_folder(models_dir)
    if (dest / MANIFEST).exists() and not force:
        return dest
    src = build_e5(models_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=models_dir))
    try:
        import onnx
        import onnxruntime
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp.chmod(0o755)
        fp32 = tmp / "fp32" / "model.onnx"
        fp32.parent.mkdir()
        _export_onnx(src, fp32)
        keep_fp32 = _ffn_output_matmuls(fp32, src)
        logging.disable(logging.WARNING)  # its advice (on the root logger) to pre-process first
        try:
            quantize_dynamic(
                fp32,
                tmp / ONNX_INT8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                nodes_to_exclude=keep_fp32,
            )
        finally:
            logging.disable(logging.NOTSET)
        shutil.rmtree(fp32.parent)
        for rel in _ONNX_SIDE_FILES:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, tmp / rel)
        _install_folder(
            tmp,
            dest,
            {
                "name": E5_NAME,
                "backend": "onnx-int8",
                "built_from": {
                    "folder": src.name,
                    "torch": torch.__version__,
                    "onnx": onnx.__version__,
                    "onnxruntime": onnxruntime.__version__,
                    "opset": ONNX_OPSET,
                    "quantization": (
                        "dynamic, int8 weights per channel; feed-forward output MatMuls in fp32"
                    ),
                },
                "license": "MIT (intfloat/multilingual-e5-small)",
            },
        )
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
