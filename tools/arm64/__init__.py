"""The edge runtime on emulated 64-bit ARM (Raspberry Pi 4 and Pi 5 CPUs) gives the same answers as on x86.

``python -m tools.arm64 [--model M] [--out summary.json]`` (``make arm64-check`` runs its test):

1. builds (or reuses) an emulated aarch64 CPython 3.11 with ``../shared/tools/arm64/make-arm64-python.sh``
   under ``<project>/.arm64/`` (``$FER_ARM64_DIR``), with the aarch64 PyPI wheels of pyproject's ``[edge]``
   extra, pinned by ``deploy/requirements-edge.txt``;
2. installs the project into it (``pip install --no-deps --target``; it is pure Python), with this
   tool's modules beside it (they are not in the wheel);
3. runs the real ``python -m edge_runtime`` there under the Pi 4 (Cortex-A72) and Pi 5 (Cortex-A76)
   profiles, and here on x86, on a few of ``../shared/media/photos`` and the first frames of
   ``short_hamilton_clip.mp4``, with both detectors;
4. compares the JSON lines: same faces (boxes within a pixel), same labels, scores within one int8
   step of the model's output quantization; counts which were identical;
5. runs a stage probe (``python -m tools.arm64 probe``, :mod:`tools.arm64.probe`) on both sides that keeps every
   intermediate array (decoded pixels, grayscale, detector tensors and boxes, crops, int8 outputs,
   the classifier with and without XNNPACK on fixed inputs), so a difference is traced to its stage
   (decoder, OpenCV, LiteRT kernel) with its size; it also records that ``import edge_runtime`` works
   without TensorFlow there and that the runtime chosen is LiteRT.

Exit codes: 0 same answers, 1 a difference beyond tolerance (listed), 2 cannot run here (reason given).
Timings under emulation are ~100x slower than a real Pi and mean nothing.

Modules: :mod:`~tools.arm64.settings` (assets, profiles, tolerances), :mod:`~tools.arm64.options` (what a
check runs on), :mod:`~tools.arm64.build` (pins, the emulated Python, the project's install),
:mod:`~tools.arm64.check` (the runs), :mod:`~tools.arm64.compare` and :mod:`~tools.arm64.report` (the
verdict), :mod:`~tools.arm64.probe`.
"""
