"""GPU throughput of the encoder core alone: torch + transformers, no Spark (runs where pyspark is absent).

A randomly initialised model with the real architecture (all-MiniLM-L6-v2's config, and BERT-base for a heavier
model) and the real tokenizer encode MovieLens item texts plus longer review-like texts, through
`udfs.encoder.Encoder` (the same length-sorted batching and pooling the Spark UDF uses). Prints texts/s per
architecture, dtype and batch size, sorted vs unsorted, and the share of time spent tokenizing on the CPU.

Run: `python bench/encoder_gpu.py --assets DIR` where DIR holds the model's config.json + tokenizer files and
ml-100k.item (`make bench-embed-gpu-assets` prepares it).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from udfs.encoder import Encoder  # noqa: E402

BERT_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}


def texts_from(item_file: Path, n: int, seed: int = 0) -> list[str]:
    rows = [line.split("\t") for line in item_file.read_text(encoding="utf-8").splitlines()[1:]]
    titles = [f"{r[1]} ({r[2]}) Genres: {', '.join(r[3].split())}." for r in rows if len(r) >= 4]
    words = " ".join(titles).split()
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append(titles[i % len(titles)])
        else:  # review-like text of 10 to 150 words: length spread is what sorted batching exploits
            out.append(" ".join(rng.choice(words) for _ in range(rng.randint(10, 150))))
    return out


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed_encode(encoder: Encoder, texts: list[str], batch: int, sort: bool, chunk: int) -> float:
    sync()
    start = time.perf_counter()
    for i in range(0, len(texts), chunk):  # `chunk` plays the Arrow batch the UDF receives
        encoder.encode(texts[i : i + chunk], batch_size=batch, sort_by_length=sort)
    sync()
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", required=True)
    parser.add_argument("--n", type=int, default=40_000)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--archs", default="minilm,bert-base")
    parser.add_argument("--dtypes", default="float32,float16,bfloat16")
    args = parser.parse_args()
    assets = Path(args.assets)
    texts = texts_from(assets / "ml-100k.item", args.n)
    tokenizer = AutoTokenizer.from_pretrained(str(assets / "model"), local_files_only=True)
    start = time.perf_counter()
    tokenizer(texts, truncation=True, max_length=args.max_length)
    tok_per_s = len(texts) / (time.perf_counter() - start)
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else args.device
    print(f"gpu-embed device={name} torch={torch.__version__} texts={len(texts)}")
    print(f"gpu-embed tokenize_only texts_per_s={tok_per_s:.0f}")
    best = {}
    for arch in args.archs.split(","):
        config = AutoConfig.from_pretrained(str(assets / "model"))
        if arch == "bert-base":
            for k, v in BERT_BASE.items():
                setattr(config, k, v)
        for dtype in [getattr(torch, d) for d in args.dtypes.split(",")]:
            torch.manual_seed(0)
            model = AutoModel.from_config(config).to(args.device, dtype=dtype).eval()
            encoder = Encoder(tokenizer, model, args.device, args.max_length, "mean")
            n = len(texts) if dtype != torch.float32 or arch == "minilm" else len(texts) // 4
            encoder.encode(texts[:2048], batch_size=256)  # warm-up: kernels, allocator
            for batch in (64, 256, 1024):
                for chunk in (2048, 16384):
                    rate = timed_encode(encoder, texts[:n], batch, True, chunk)
                    best[(arch, str(dtype))] = max(best.get((arch, str(dtype)), 0), rate)
                    print(f"gpu-embed arch={arch} dtype={str(dtype)[6:]} batch={batch} arrow_chunk={chunk} "
                          f"sorted=1 texts_per_s={rate:.0f}", flush=True)  # fmt: skip
            unsorted = timed_encode(encoder, texts[:n], 256, False, 16384)
            sorted_ = timed_encode(encoder, texts[:n], 256, True, 16384)
            print(f"gpu-embed arch={arch} dtype={str(dtype)[6:]} batch=256 unsorted_per_s={unsorted:.0f} "
                  f"sorted_per_s={sorted_:.0f} sorted_gain={sorted_ / unsorted:.2f}", flush=True)  # fmt: skip
            del model, encoder
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    summary = " ".join(f"{a}_{d[6:]}={r:.0f}" for (a, d), r in best.items())
    print(f"bench-embed-gpu best_texts_per_s {summary} tokenize_per_s={tok_per_s:.0f}")


if __name__ == "__main__":
    main()
