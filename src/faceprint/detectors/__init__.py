"""Face detectors: each has ``detect(image) -> Faces``. Create them by name with
:func:`faceprint.create_detector`."""
