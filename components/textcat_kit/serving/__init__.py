"""``textcat-kit serve``: a REST service with micro-batching for any text classification
pipeline (FastAPI + uvicorn, the ``serve`` extra). See docs/serving.md."""
