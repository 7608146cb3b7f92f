"""Face detectors behind one protocol (BlazeFace, Haar) and eye-line alignment of their crops."""
