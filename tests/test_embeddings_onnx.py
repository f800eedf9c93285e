"""The onnx-int8 backend: an int8 ONNX export of the bundled embedder, built offline from its
folder, embedding like the fp32 torch model (prompts, pooling, normalization) within int8 noise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag.bundled.e5 import e5_folder
from rag.bundled.e5_onnx import ONNX_INT8, build_e5_onnx, e5_onnx_folder
from rag.bundled.files import MANIFEST, verify_folder
from rag.config import BUNDLED_EMBEDDING_MODEL, EmbeddingSettings
from rag.embeddings import Embedder, OnnxEncoder
from rag.errors import ModelError
from rag.service import RAGService

SENTENCES = [
    "延吉市2016年集体访人次同比下降52%。",
    "延吉市2016年集體訪人次同比下降52%。",
    "兰州城关区信访总量同比下降15.1%。",
    "蘭州城關區信訪總量同比下降15.1%。",
    "龍港市城鄉居民收入倍差縮小到1.86。",
    "目前,龙港常住人口46.5万人,其中外来人口11.2万人。",
    "延吉市森林覆盖率达到64.3%,空气质量优良天数比例为94.2%。",
    "政府工作報告指出,二〇一八年全市地區生產總值增長百分之六點五,城鎮新增就業十二萬人。",
]

# Measured: int8 vs fp32 cosine at least 0.9989 on these, 0.9986 on the 386 passages of
# bench/embedder.py (mean 0.9992); with the feed-forward outputs in int8 too: 0.994 (mean 0.997).
MIN_COSINE = 0.995


def _embedder(seeded: RAGService, backend: str) -> Embedder:
    settings = seeded.settings.embedding.model_copy(update={"backend": backend})
    return Embedder(settings, seeded.settings.models_dir)


@pytest.fixture(scope="session")
def onnx_embedder(seeded: RAGService) -> Embedder:
    """The bundled model on the onnx-int8 backend (its folder built once, into the user cache)."""
    return _embedder(seeded, "onnx-int8")


@pytest.fixture(scope="session")
def torch_embedder(seeded: RAGService) -> Embedder:
    """The same model in fp32 torch: the reference."""
    return _embedder(seeded, "torch")


def test_auto_picks_int8_for_the_bundled_model_only(seeded: RAGService, tmp_path: Path) -> None:
    assert seeded.embedder.backend == "onnx-int8"  # the default, `auto`
    other = EmbeddingSettings(model=str(tmp_path / "some-st-folder"))
    assert Embedder(other, tmp_path).backend == "torch"


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1))


def test_int8_folder_is_intact_and_loads_offline(onnx_embedder: Embedder) -> None:
    assert isinstance(onnx_embedder.encoder, OnnxEncoder)  # sockets are blocked in tests
    assert onnx_embedder.name == BUNDLED_EMBEDDING_MODEL  # the index's model name is unchanged
    assert onnx_embedder.backend == "onnx-int8" and onnx_embedder.dimension == 384
    folder = e5_onnx_folder(onnx_embedder.models_dir)
    assert verify_folder(folder) == []
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["backend"] == "onnx-int8"
    assert manifest["built_from"]["folder"] == e5_folder(onnx_embedder.models_dir).name
    # int8 weights (embeddings table included), but the feed-forward outputs': under a third
    fp32 = (e5_folder(onnx_embedder.models_dir) / "model.safetensors").stat().st_size
    assert 0.25 < manifest["files"][ONNX_INT8]["bytes"] / fp32 < 0.33


@pytest.mark.slow  # an export and a quantization: about 40 s on 2 cores
def test_int8_build_is_reproducible(tmp_path: Path, onnx_embedder: Embedder) -> None:
    """A second build, from the same fp32 folder, gives the very same bytes."""
    models = tmp_path / "models"
    models.mkdir()
    cached = e5_folder(onnx_embedder.models_dir)
    (models / cached.name).symlink_to(cached)  # reuse the built fp32 folder
    rebuilt = build_e5_onnx(models)
    assert rebuilt.name == e5_onnx_folder(onnx_embedder.models_dir).name
    ours = json.loads((rebuilt / MANIFEST).read_text())["files"]
    theirs = json.loads((e5_onnx_folder(onnx_embedder.models_dir) / MANIFEST).read_text())
    assert ours == theirs["files"]
    assert not any(p.name.startswith(".") for p in models.iterdir())  # no temp folder left


def test_int8_vectors_match_fp32(onnx_embedder: Embedder, torch_embedder: Embedder) -> None:
    torch_emb = torch_embedder
    assert torch_emb.backend == "torch"
    p8, p32 = onnx_embedder.encode_passages(SENTENCES), torch_emb.encode_passages(SENTENCES)
    assert p8.dtype == np.float32 and p8.shape == p32.shape == (len(SENTENCES), 384)
    assert np.allclose(np.linalg.norm(p8, axis=1), 1.0, atol=1e-5)
    assert cosines(p8, p32).min() >= MIN_COSINE
    q8 = np.stack([onnx_embedder.encode_query(s) for s in SENTENCES])
    q32 = np.stack([torch_emb.encode_query(s) for s in SENTENCES])
    assert cosines(q8, q32).min() >= MIN_COSINE
    raw8, raw32 = onnx_embedder.encode_raw(SENTENCES[:2]), torch_emb.encode_raw(SENTENCES[:2])
    assert cosines(raw8, raw32).min() >= MIN_COSINE
    assert onnx_embedder.count_tokens(SENTENCES) == torch_emb.count_tokens(SENTENCES)
    assert onnx_embedder.encode_passages([]).shape == (0, 384)


def test_long_texts_are_truncated_like_fp32(
    onnx_embedder: Embedder, torch_embedder: Embedder
) -> None:
    long = [SENTENCES[5] * 60, SENTENCES[0]]  # about 1,500 tokens, padded beside a short one
    assert onnx_embedder.count_tokens(long[:1]) == torch_embedder.count_tokens(long[:1]) == 512
    v8 = onnx_embedder.encode_passages(long)
    v32 = torch_embedder.encode_passages(long)
    assert cosines(v8, v32).min() >= MIN_COSINE


def test_prompts_are_applied(onnx_embedder: Embedder) -> None:
    assert (onnx_embedder.query_prompt, onnx_embedder.passage_prompt) == ("query: ", "passage: ")
    text = SENTENCES[0]
    q = onnx_embedder.encode_query(text)
    assert np.allclose(q, onnx_embedder.encode_raw(["query: " + text])[0], atol=1e-6)
    p = onnx_embedder.encode_passages([text], batch_size=1)[0]
    assert np.allclose(p, onnx_embedder.encode_raw(["passage: " + text])[0], atol=1e-6)
    assert float(q @ p) < 0.999


CANDIDATES = (0, 3, 4, 5, 6, 7)  # simplified and traditional passages, one topic each


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("延吉市2016年集体访人次同比下降了多少?", 0),
        ("兰州城关区信访总量下降了多少?", 3),  # simplified question, traditional passage
        ("龍港市常住人口有多少?", 5),  # and the other way round
        ("What is the forest coverage rate of Yanji?", 6),
    ],
)
def test_int8_ranks_the_right_passage_first(
    onnx_embedder: Embedder, question: str, expected: int
) -> None:
    passages = onnx_embedder.encode_passages([SENTENCES[i] for i in CANDIDATES])
    scores = passages @ onnx_embedder.encode_query(question)
    assert CANDIDATES[int(np.argmax(scores))] == expected


def test_int8_backend_is_for_the_bundled_model_only(tmp_path: Path) -> None:
    settings = EmbeddingSettings(model="no-such-org/no-such-model", backend="onnx-int8")
    with pytest.raises(ModelError, match="onnx-int8 backend"):
        _ = Embedder(settings, tmp_path).encoder
