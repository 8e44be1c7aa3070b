"""Training and fine-tuning embedding models (``pip install faceprint[train]``: PyTorch).

- :mod:`.backbones`: dlib's ResNet (loads dlib's weights, equals the ONNX port) and a small
  ResNet for training from scratch.
- :mod:`.losses` and :mod:`.miners`: triplet (batch-all / batch-hard / semi-hard mining),
  contrastive, Siamese (L1 and chi-squared logistic units), softmax, SphereFace, CosFace, ArcFace.
- :mod:`.data`: a folder of identities aligned by faceprint's pipeline (cached), the
  identity-disjoint split and the P x K sampler; :mod:`.augment`: the face processing stage.
- :mod:`.trainer`, :mod:`.validate`, :mod:`.export`, :mod:`.run`: the loop, the held-out
  validation, the ONNX + spec export, and the one call ``faceprint train`` makes.
- :mod:`.protocol`: the fine-tuning benchmark's protocol (one sealed test split, every choice
  on validation identities).
- :mod:`.factory`: names to objects (what ``--backbone``, ``--loss`` and ``--miner`` accept).

Nothing here is imported by ``import faceprint``; torch is imported only by these modules.
"""
