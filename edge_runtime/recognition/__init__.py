"""Detector + crop + classifier in one call (:class:`FaceRecognizer`), and tracking across video frames."""
