"""Trained Keras model -> verified .tflite variants (int8, float32, float16, dynamic) with model cards.

``python -m convert --model models/fer4.keras --data ../shared/data/fer2013 --out models/``
"""
