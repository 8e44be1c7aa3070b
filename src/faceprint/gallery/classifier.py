"""An optional closed-set classifier trained on a gallery's vectors (scikit-learn).

For users who know every face belongs to an enrolled person (no strangers) and have several
photos per person: a linear SVM or logistic regression on the embeddings can beat nearest
neighbour. It never answers "unknown"; use :meth:`Gallery.identify` for open-set work.

    >>> clf = ClosedSetClassifier("svm").fit(gallery)
    >>> names, confidence = clf.predict(embeddings)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, GalleryError
from ..types import Embeddings

KINDS = ("svm", "logistic")


class ClosedSetClassifier:
    """A linear SVM (``"svm"``; confidence NaN) or ``"logistic"`` regression (confidence = probability).

    Args:
        kind: ``"svm"`` or ``"logistic"``.
        C: inverse regularisation strength.

    Learned: ``classes_`` (person names), ``model_id_``, ``estimator_``.
    """

    def __init__(self, kind: str = "svm", C: float = 10.0) -> None:
        if kind not in KINDS:
            raise ConfigError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind, self.C = kind, float(C)

    def fit(self, gallery: Any) -> ClosedSetClassifier:
        """Train on every sample of ``gallery``.

        Raises:
            GalleryError: fewer than two people, or scikit-learn is not installed.
        """
        emb, names, _ids = gallery.samples()
        if len(set(names)) < 2:
            raise GalleryError("a classifier needs at least two enrolled people")
        try:
            from sklearn.linear_model import LogisticRegression
            from sklearn.svm import SVC
        except ImportError as exc:
            raise GalleryError("the closed-set classifier needs scikit-learn: pip install scikit-learn") from exc
        if self.kind == "svm":
            est = SVC(kernel="linear", C=self.C)
        else:
            est = LogisticRegression(C=self.C, max_iter=2000)
        self.estimator_ = est.fit(emb.vectors, np.array(names))
        self.classes_ = [str(c) for c in est.classes_]
        self.model_id_ = gallery.model_id
        return self

    def predict(self, embeddings: Embeddings) -> tuple[list[str], np.ndarray]:
        """Names ``(N,)`` and confidences ``(N,)`` in [0, 1] (NaN when unavailable).

        Raises:
            GalleryError: not fitted. ModelMismatchError: another model's vectors.
        """
        if not hasattr(self, "estimator_"):
            raise GalleryError("classifier is not fitted: call fit(gallery) first")
        if embeddings.model_id != self.model_id_:
            from ..errors import ModelMismatchError

            raise ModelMismatchError(f"classifier was trained on {self.model_id_!r}, got {embeddings.model_id!r}")
        if len(embeddings) == 0:
            return [], np.zeros(0)
        names = [str(n) for n in self.estimator_.predict(embeddings.vectors)]
        if self.kind == "logistic":
            conf = self.estimator_.predict_proba(embeddings.vectors).max(1)
        else:  # SVM margins are not probabilities
            conf = np.full(len(names), np.nan)
        return names, conf
