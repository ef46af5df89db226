"""The linear probe: how much frozen features are worth, framework-neutral.

A logistic regression on standardised features (scikit-learn) is trained on the
training features and scored on the test features. Chapters 00 and 01 use it to
compare backbones, input recipes and layers without training the network itself.

Example:
    >>> import numpy as np
    >>> train = np.array([[0.0], [1.0], [4.0], [5.0]])
    >>> probe_accuracy(train, [0, 0, 1, 1], np.array([[0.5], [4.5]]), [0, 1])
    1.0
"""
from __future__ import annotations

import numpy as np


def probe_accuracy(train_features, train_labels, test_features, test_labels,
                   max_iter: int = 1000) -> float:
    """Test accuracy of a logistic regression trained on standardised ``train_features``.

    ``max_iter`` caps the solver's iterations (it stops earlier once it has converged).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(train_features) != len(train_labels) or len(test_features) != len(test_labels):
        raise ValueError(f"features and labels must have the same length: train "
                         f"{len(train_features)} vs {len(train_labels)}, test "
                         f"{len(test_features)} vs {len(test_labels)}")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    probe.fit(np.asarray(train_features), np.asarray(train_labels))
    return float(probe.score(np.asarray(test_features), np.asarray(test_labels)))
