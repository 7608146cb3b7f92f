"""The shipped expression models: package data of ``edge_runtime.models`` (see pyproject.toml).

Every ``<name>_<variant>.tflite`` here has its model card ``<name>_<variant>.json`` beside it; both go
into the wheel. Keras models, evaluation reports and plots stay in the repository only.
``edge_runtime.paths.bundled_models_dir()`` finds this folder in any install.
"""
