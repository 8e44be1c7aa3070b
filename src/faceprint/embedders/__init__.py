"""Face embedders: each has a :class:`~faceprint.spec.ModelSpec` and
``embed(aligned) -> Embeddings``. Create them by name with :func:`faceprint.create_embedder`."""
