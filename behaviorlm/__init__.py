"""behaviorlm, the library: pure DataFrame -> DataFrame functions with column names as parameters, what the stages
in `jobs/` call and what a notebook imports.

- data in: `sources.movielens`, `sources.synthetic`, `validate` (input contract, rejected rows), `schemas`
- embeddings: `embedding` (model id, encoder UDF), `text` (item text), `users` (user vectors), `vectors`
- similarity: `neighbors` (exact and approximate k-NN for any keyed vectors)
- recommend: `scoring`; complete: `ratings`, `attributes`; evaluate: `metrics`, `backtest`
- plumbing: `config`, `session`, `delta` (Delta I/O), `runs` (run metrics, which run to read), `logs`, `assets`
- reports: `summaries` (histograms, top counts, a PCA sample, a few users' rows: bounded driver-side results)
"""

__version__ = "0.2.0"
