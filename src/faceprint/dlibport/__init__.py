"""The port of dlib's models to numpy, OpenCV and ONNX Runtime, in one place.

- :mod:`.fmt`: reader for dlib's serialised ``.dat`` files;
- :mod:`.resnet`: dlib's face ResNet rebuilt as an ONNX graph from its ``.dat`` file;
- :mod:`.shape`: dlib's shape predictor (regression-tree cascade) in numpy;
- :mod:`.chip`: dlib's ``get_face_chip`` geometry with OpenCV sampling;
- :mod:`.native`: importing the real dlib (the ``[dlib]`` extra) with a typed error.

The embedder, aligner and HOG detector that use them live with the other components
(:mod:`faceprint.embedders.dlib_resnet`, :class:`faceprint.align.DlibChipAligner`,
:mod:`faceprint.detectors.hog`). Nothing here imports dlib unless asked for the native backend.
"""
