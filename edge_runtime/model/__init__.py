"""The expression model: its card (labels, input contract, quantization), the LiteRT interpreter,
the checks that bind a ``.tflite`` file to its card, preprocessing, and :class:`ExpressionClassifier`."""
